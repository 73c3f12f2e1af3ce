// controlcenter/k8s/serviceaccount.libsonnet: the v1 ServiceAccount of a
// service, annotated with its IRSA role (eks.amazonaws.com/role-arn) when
// irsa_role_arn is set. Reached through lib.serviceAccount(svc).
{
  // new(lib, svc): the ServiceAccount.
  new(lib, svc):: {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: lib.metadata(svc, svc.name) + {
      [if svc.irsa_role_arn != null then 'annotations']: {
        'eks.amazonaws.com/role-arn': svc.irsa_role_arn,
      },
    },
  },
}
