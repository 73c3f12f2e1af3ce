// jsonnet/main.jsonnet: acme-platform's own entry point. controlcenter
// evaluates it instead of the library's lib-jsonnet/main.jsonnet, with the
// resolved state (see `controlcenter state --env E`) as the top-level
// argument `state`; it returns the array of objects to apply.
//
// It renders everything the shipped library renders, then, for every
// service:
//
//   * Team label. The service field `team` (declared in
//     schemas/service.schema.json, arriving as `svc.extra.team`) becomes the
//     label `acme.example.com/team: <team>` on every object of that service and
//     on its pods, next to all the library's labels. A service without a
//     team gets no such label. Selectors are not touched (they use only
//     app.kubernetes.io/name), so changing a team never breaks a Deployment.
//
//   * NetworkPolicy (networking.k8s.io/v1, named like the service, see
//     networkpolicy.libsonnet): the service's pods accept ingress traffic on
//     their `http` port only, and only from pods in the same namespace.
//     Services that have an Ingress also admit the ingress controller's
//     namespace (`ingressFromNamespaces` below), or their Ingress would
//     never reach them.
//
//   * Graceful shutdown. Every Deployment's pods get
//     terminationGracePeriodSeconds: 60 (Kubernetes' default is 30), so
//     in-flight requests and queue messages drain before a pod is killed.
//
// Everything else is the library's behaviour; its extension points are
// documented in lib-jsonnet/controlcenter/lib.libsonnet and
// lib-jsonnet/README.md.
local cc = import 'controlcenter/lib.libsonnet';
local networkPolicy = import 'networkpolicy.libsonnet';

function(state)
  (cc.new(state) + {
     local lib = self,

     // Label key carrying the owning team.
     teamLabel:: 'acme.example.com/team',

     // Seconds a stopping pod gets to drain.
     terminationGracePeriodSeconds:: 60,

     // Namespaces (besides the service's own) allowed to reach the `http`
     // port of services that have an Ingress: the ingress controller's.
     ingressFromNamespaces:: ['ingress-nginx'],

     // team(svc): the service's team, or null.
     team(svc)::
       if std.objectHas(svc.extra, 'team') && svc.extra.team != null
       then svc.extra.team else null,

     labels(svc)::
       super.labels(svc)
       + (if lib.team(svc) == null then {} else { [lib.teamLabel]: lib.team(svc) }),

     deployment(svc):: super.deployment(svc) + {
       spec+: { template+: { spec+: {
         terminationGracePeriodSeconds: lib.terminationGracePeriodSeconds,
       } } },
     },

     // networkPolicy(svc): the service's NetworkPolicy (a new extension point).
     networkPolicy(svc):: networkPolicy.new(lib, svc, lib.ingressFromNamespaces),

     serviceManifests(svc):: super.serviceManifests(svc) + [lib.networkPolicy(svc)],
   }).manifests
