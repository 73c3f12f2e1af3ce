// controlcenter/k8s/pdb.libsonnet: the policy/v1 PodDisruptionBudget of a
// service with `disruption_budget` (min_available or max_unavailable, an
// integer or a percentage string, passed through). Reached through lib.pdb(svc).
{
  // new(lib, svc): the PodDisruptionBudget; svc.disruption_budget must be set.
  new(lib, svc)::
    local db = svc.disruption_budget;
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: lib.metadata(svc, svc.name),
      spec: {
        selector: { matchLabels: lib.selectorLabels(svc) },
        [if std.objectHas(db, 'min_available') then 'minAvailable']: db.min_available,
        [if std.objectHas(db, 'max_unavailable') then 'maxUnavailable']: db.max_unavailable,
      },
    },
}
