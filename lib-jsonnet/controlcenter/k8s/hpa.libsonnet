// controlcenter/k8s/hpa.libsonnet: the autoscaling/v2 HorizontalPodAutoscaler
// of a service with `autoscaling` (min/max replicas, CPU utilization target
// on the Deployment). Reached through lib.hpa(svc).
{
  // new(lib, svc): the HorizontalPodAutoscaler; svc.autoscaling must be set.
  new(lib, svc):: {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: lib.metadata(svc, svc.name),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: lib.deployment(svc).metadata.name },
      minReplicas: svc.autoscaling.min_replicas,
      maxReplicas: svc.autoscaling.max_replicas,
      metrics: [{
        type: 'Resource',
        resource: {
          name: 'cpu',
          target: { type: 'Utilization', averageUtilization: svc.autoscaling.cpu_utilization },
        },
      }],
    },
  },
}
