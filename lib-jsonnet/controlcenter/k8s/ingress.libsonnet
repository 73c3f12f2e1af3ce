// controlcenter/k8s/ingress.libsonnet: the networking.k8s.io/v1 Ingress of
// a service with `ingress`: one host, one Prefix path to the Service port
// `http`, ingressClassName when `class` is set, TLS when `tls_secret` is set,
// `annotations` verbatim. Reached through lib.ingress(svc).
{
  // new(lib, svc): the Ingress; svc.ingress must be set.
  new(lib, svc)::
    local ing = svc.ingress;
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: lib.metadata(svc, svc.name) + {
        [if std.length(ing.annotations) > 0 then 'annotations']: ing.annotations,
      },
      spec: {
        [if ing.class != null then 'ingressClassName']: ing.class,
        rules: [{
          host: ing.host,
          http: {
            paths: [{
              path: ing.path,
              pathType: 'Prefix',
              backend: { service: { name: lib.service(svc).metadata.name, port: { name: 'http' } } },
            }],
          },
        }],
        [if ing.tls_secret != null then 'tls']: [{ hosts: [ing.host], secretName: ing.tls_secret }],
      },
    },
}
