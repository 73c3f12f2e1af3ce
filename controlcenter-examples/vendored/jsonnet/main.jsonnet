// jsonnet/main.jsonnet: the library's manifests, plus one object of a kind
// the library does not render (a LimitRange), built with the vendored
// package k8s-extra (jsonnetfile.json; vendor/k8s-extra links to
// libs/k8s-extra, as `jb install` leaves a local package).
local cc = import 'controlcenter/lib.libsonnet';
local k = import 'k8s-extra/main.libsonnet';
local limitRange = k.core.v1.limitRange;

function(state)
  (cc.new(state) + {
     local lib = self,
     extraManifests:: [
       limitRange.new('container-defaults')
       + limitRange.withNamespace(lib.namespace)
       + limitRange.withLabels({ 'app.kubernetes.io/managed-by': 'controlcenter' })
       + limitRange.withContainerLimits(
         defaultRequest={ cpu: '100m', memory: '256Mi' },
         default={ memory: '512Mi' },
         max={ memory: if state.env == 'prod' then '8Gi' else '4Gi' },
       ),
     ],
   }).manifests
