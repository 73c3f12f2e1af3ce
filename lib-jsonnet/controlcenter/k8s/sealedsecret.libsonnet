// controlcenter/k8s/sealedsecret.libsonnet: the Bitnami SealedSecret
// (bitnami.com/v1alpha1) of one entry of state.sealed_secrets, in the
// entry's own namespace, with the common labels on the object and on the
// Secret it unseals to. Reached through lib.sealedSecret(name, s).
{
  // new(lib, name, s): the SealedSecret.
  new(lib, name, s)::
    local meta = { name: name, namespace: s.namespace, labels: lib.commonLabels };
    {
      apiVersion: 'bitnami.com/v1alpha1',
      kind: 'SealedSecret',
      metadata: meta,
      spec: {
        encryptedData: s.encryptedData,
        template: { type: s.type, metadata: meta },
      },
    },
}
