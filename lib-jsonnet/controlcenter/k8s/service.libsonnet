// controlcenter/k8s/service.libsonnet: the v1 Service (ClusterIP) of a
// service: port lib.servicePort (80) named `http`, to the container port
// named `http`. Reached through lib.service(svc).
{
  // new(lib, svc): the Service.
  new(lib, svc):: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: lib.metadata(svc, svc.name),
    spec: {
      type: 'ClusterIP',
      selector: lib.selectorLabels(svc),
      ports: [{ name: 'http', port: lib.servicePort, targetPort: 'http', protocol: 'TCP' }],
    },
  },
}
