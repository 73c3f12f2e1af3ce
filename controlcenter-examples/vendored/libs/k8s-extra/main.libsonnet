// k8s-extra: constructors for Kubernetes kinds the controlcenter library
// does not render, in k8s-libsonnet's style (`new(name)`, then `with*`
// mixins). Installed by jsonnet-bundler as a local package
// (jsonnetfile.json), so it is imported as 'k8s-extra/main.libsonnet' and
// imports its own files the same way, through vendor/.
local util = import 'k8s-extra/util.libsonnet';

{
  core+: { v1+: {
    // v1 LimitRange: default requests and limits of the containers of a
    // namespace that set none, and the bounds any container must stay in.
    limitRange: {
      new(name):: util.object('v1', 'LimitRange', name) + { spec: { limits: [] } },
      // A `Container` limit; every argument is an optional resource map
      // (`{ memory: '256Mi', cpu: '100m' }`).
      withContainerLimits(defaultRequest={}, default={}, min={}, max={}):: {
        spec+: { limits+: [util.prune({
          type: 'Container',
          defaultRequest: defaultRequest,
          default: default,
          min: min,
          max: max,
        })] },
      },
      withNamespace(namespace):: { metadata+: { namespace: namespace } },
      withLabels(labels):: { metadata+: { labels+: labels } },
    },
  } },
}
