// controlcenter/k8s/deployment.libsonnet: the apps/v1 Deployment of a
// service and its single container (image, port `http`, resources, probes,
// config from the ConfigMap, secrets from the ExternalSecret targets).
// Reached through lib.deployment(svc) and lib.container(svc); `lib` is the
// object returned by new(state), so every cross-reference is late-bound.
local util = import '../util.libsonnet';

{
  // container(lib, svc): the service's container.
  container(lib, svc)::
    local cm = lib.configMapOf(svc);
    local secretEnv = [
      {
        name: var,
        valueFrom: {
          secretKeyRef: {
            name: lib.externalSecretName(svc, svc.secrets[var].store),
            key: var,
          },
        },
      }
      for var in std.objectFields(svc.secrets)
    ];
    local requests = util.withoutNulls({
      memory: util.quantity(svc.memory_min),
      cpu: util.quantity(svc.cpu_min),
    });
    local limits = util.withoutNulls({
      memory: util.quantity(svc.memory_max),
      cpu: util.quantity(svc.cpu_max),
    });
    local resources = {
      [if std.length(requests) > 0 then 'requests']: requests,
      [if std.length(limits) > 0 then 'limits']: limits,
    };
    local probe = if svc.probes == null then null else {
      httpGet: { path: svc.probes.path, port: 'http' },
      initialDelaySeconds: svc.probes.initial_delay_seconds,
    };
    {
      name: svc.name,
      image: svc.image,
      ports: [{ name: 'http', containerPort: svc.port, protocol: 'TCP' }],
      [if cm != null then 'envFrom']: [{ configMapRef: { name: cm.metadata.name } }],
      [if std.length(secretEnv) > 0 then 'env']: secretEnv,
      [if std.length(resources) > 0 then 'resources']: resources,
      [if probe != null then 'readinessProbe']: probe,
      [if probe != null then 'livenessProbe']: probe,
    },

  // new(lib, svc): the Deployment.
  new(lib, svc)::
    local cm = lib.configMapOf(svc);
    local annotations = svc.annotations + (
      if cm == null then {}
      else { 'checksum/config': std.md5(std.manifestJsonMinified(cm.data)) }
    );
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: lib.metadata(svc, svc.name),
      spec: {
        // with autoscaling the HPA owns the replica count
        [if svc.autoscaling == null then 'replicas']: svc.replicas,
        selector: { matchLabels: lib.selectorLabels(svc) },
        template: {
          metadata: {
            labels: lib.labels(svc),
            [if std.length(annotations) > 0 then 'annotations']: annotations,
          },
          spec: {
            serviceAccountName: lib.serviceAccount(svc).metadata.name,
            securityContext: { runAsNonRoot: true },
            containers: [lib.container(svc)],
          },
        },
      },
    },
}
