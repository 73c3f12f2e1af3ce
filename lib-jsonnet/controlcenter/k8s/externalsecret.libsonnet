// controlcenter/k8s/externalsecret.libsonnet: the External Secrets Operator
// ExternalSecret(s) (lib.externalSecretApiVersion, by default
// external-secrets.io/v1) of a service with
// `secrets`: one per ClusterSecretStore named by the entries. Each fills a
// Secret of the same name whose keys are the environment variable names;
// the Deployment reads them with secretKeyRef. Reached through
// lib.secretStores(svc), lib.externalSecretName(svc, store),
// lib.externalSecret(svc, store) and lib.externalSecrets(svc).
local util = import '../util.libsonnet';

{
  // stores(svc): the distinct `store` values of svc.secrets, sorted.
  stores(svc):: util.uniq([svc.secrets[k].store for k in std.objectFields(svc.secrets)]),

  // name(svc, store): `<name>` when the service uses one store, else `<name>-<store>`.
  name(svc, store)::
    if std.length($.stores(svc)) == 1 then svc.name else svc.name + '-' + store,

  // new(lib, svc, store): the ExternalSecret for the entries of `store`.
  new(lib, svc, store)::
    local name = lib.externalSecretName(svc, store);
    {
      apiVersion: lib.externalSecretApiVersion,
      kind: 'ExternalSecret',
      metadata: lib.metadata(svc, name),
      spec: {
        refreshInterval: '1h',
        secretStoreRef: { kind: 'ClusterSecretStore', name: store },
        target: { name: name, creationPolicy: 'Owner' },
        data: [
          local s = svc.secrets[var];
          {
            secretKey: var,
            remoteRef: { key: s.key, [if s.property != null then 'property']: s.property },
          }
          for var in std.objectFields(svc.secrets)
          if svc.secrets[var].store == store
        ],
      },
    },
}
