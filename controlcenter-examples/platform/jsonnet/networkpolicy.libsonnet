// jsonnet/networkpolicy.libsonnet (acme-platform): the networking.k8s.io/v1
// NetworkPolicy of one service. Selects the service's pods by the library's
// immutable selector (app.kubernetes.io/name) and admits ingress traffic
// only on the container port named `http`, only from pods of the same
// namespace (a podSelector without a namespaceSelector). Every other ingress
// to those pods is denied; egress is untouched.
//
// `fromNamespaces` lists extra namespaces allowed to reach the `http` port of
// services that have an Ingress (the ingress controller's namespace).
{
  // new(lib, svc, fromNamespaces): the NetworkPolicy, named like the service.
  new(lib, svc, fromNamespaces=[])::
    local extraPeers =
      if svc.ingress == null then []
      else [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } }
        for ns in fromNamespaces
      ];
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: lib.metadata(svc, svc.name),
      spec: {
        podSelector: { matchLabels: lib.selectorLabels(svc) },
        policyTypes: ['Ingress'],
        ingress: [{
          from: [{ podSelector: {} }] + extraPeers,
          ports: [{ protocol: 'TCP', port: 'http' }],
        }],
      },
    },
}
