// controlcenter/lib.libsonnet: the public API of the controlcenter Jsonnet
// library. Owns `new(state)`, the library object it returns (its extension
// points, all hidden fields, and the `manifests` array built from them) and
// the order in which one service's objects are assembled. Per-kind bodies
// live in k8s/<kind>.libsonnet, helpers in util.libsonnet.
//
// `state` is the resolved state documented in docs/state.md (what
// `controlcenter state --env E` prints). Every extension point reaches the
// others through `self`, so an override of one (say `labels(svc)`) is seen
// by all the objects that use it.
//
// A repo's jsonnet/main.jsonnet:
//
//   local cc = import 'controlcenter/lib.libsonnet';
//   function(state)
//     (cc.new(state) + {
//        deployment(svc):: super.deployment(svc) + {
//          spec+: { template+: { spec+: { terminationGracePeriodSeconds: 60 } } },
//        },
//        extraManifests:: [ ... ],
//      }).manifests
//
// A constructor overridden to return null drops its object(s) from
// `manifests` (e.g. `pdb(svc):: null`).
local util = import 'util.libsonnet';
local configMap = import 'k8s/configmap.libsonnet';
local deployment = import 'k8s/deployment.libsonnet';
local externalSecret = import 'k8s/externalsecret.libsonnet';
local hpa = import 'k8s/hpa.libsonnet';
local ingress = import 'k8s/ingress.libsonnet';
local pdb = import 'k8s/pdb.libsonnet';
local sealedSecret = import 'k8s/sealedsecret.libsonnet';
local service = import 'k8s/service.libsonnet';
local serviceAccount = import 'k8s/serviceaccount.libsonnet';
local workspace = import 'k8s/workspace.libsonnet';

{
  // The helpers of util.libsonnet (compact, withoutNulls, text, upperSnake,
  // dnsName, ...), for repos' own templates.
  util:: util,

  // new(state): the library object for one environment. Take `.manifests`.
  new(state):: {
    local lib = self,

    // ---- inputs --------------------------------------------------------

    // The resolved state, unchanged.
    state:: state,

    // Namespace of every namespaced object (SealedSecrets use their own).
    namespace:: state.namespace,

    // Labels every object carries (state.labels: managed-by, part-of, ...),
    // never app.kubernetes.io/instance.
    commonLabels:: util.withoutInstance(state.labels),

    // The services to render, in key order: in a service's unit, that
    // service. Override to filter or patch services before any object is
    // built. Each carries its ConfigMap, built once (see configMapOf); a
    // service patched with `+` rebuilds it for itself.
    services:: [
      state.services[k] + { configMapBuilt:: lib.configMap(self) }
      for k in (
        if lib.unit == 'service' then [state.unit_service]
        else std.objectFields(state.services)
      )
    ],

    // ---- shared pieces --------------------------------------------------

    // labels(svc): labels of every object of the service and of its pods:
    // commonLabels + app.kubernetes.io/name + app.kubernetes.io/version.
    // Override to add labels everywhere at once:
    //   labels(svc):: super.labels(svc) + { 'example.com/tier': 'web' },
    labels(svc):: lib.commonLabels + {
      'app.kubernetes.io/name': svc.name,
      'app.kubernetes.io/version': svc.version,
    },

    // selectorLabels(svc): the immutable selector of the Deployment,
    // Service and PDB; only app.kubernetes.io/name. Changing it on a live
    // Deployment is rejected by the API server.
    selectorLabels(svc):: { 'app.kubernetes.io/name': svc.name },

    // metadata(svc, name): metadata of a namespaced object of the service.
    metadata(svc, name):: { name: name, namespace: lib.namespace, labels: lib.labels(svc) },

    // ---- per-kind constructors (one service) -----------------------------

    // serviceAccount(svc): v1 ServiceAccount, IRSA annotation when irsa_role_arn is set.
    serviceAccount(svc):: serviceAccount.new(lib, svc),

    // configMap(svc): v1 ConfigMap, data = env + FLAG_<NAME> per flag.
    // Patch `data+:` to add keys; the checksum/config annotation follows.
    configMap(svc):: configMap.new(lib, svc),

    // configMapOf(svc): configMap(svc), built once per service of
    // `services`: the ConfigMap itself and the Deployment's checksum of
    // its data share one object instead of computing the data twice. A
    // service made elsewhere builds its own.
    configMapOf(svc)::
      if std.objectHasAll(svc, 'configMapBuilt') then svc.configMapBuilt else lib.configMap(svc),

    // container(svc): the Deployment's single container (port `http`,
    // envFrom the ConfigMap, secret env vars, resources, probes).
    container(svc):: deployment.container(lib, svc),

    // deployment(svc): apps/v1 Deployment (replicas omitted with autoscaling,
    // checksum/config pod annotation, serviceAccountName, runAsNonRoot).
    deployment(svc):: deployment.new(lib, svc),

    // servicePort: port of every Service (to the container port `http`).
    servicePort:: 80,

    // service(svc): v1 Service, ClusterIP, servicePort -> `http`.
    service(svc):: service.new(lib, svc),

    // hpa(svc): autoscaling/v2 HorizontalPodAutoscaler; called only when
    // svc.autoscaling is set.
    hpa(svc):: hpa.new(lib, svc),

    // pdb(svc): policy/v1 PodDisruptionBudget; called only when
    // svc.disruption_budget is set.
    pdb(svc):: pdb.new(lib, svc),

    // ingress(svc): networking.k8s.io/v1 Ingress; called only when
    // svc.ingress is set.
    ingress(svc):: ingress.new(lib, svc),

    // secretStores(svc): distinct ClusterSecretStores named by svc.secrets, sorted.
    secretStores(svc):: externalSecret.stores(svc),

    // externalSecretName(svc, store): name of the ExternalSecret of `store`
    // and of the Secret it fills: `<name>`, or `<name>-<store>` when the
    // service uses several stores. The container's secretKeyRefs use it.
    externalSecretName(svc, store):: externalSecret.name(svc, store),

    // externalSecretApiVersion: apiVersion of the ExternalSecrets.
    // External Secrets Operator serves external-secrets.io/v1 (v0.16+);
    // clusters still on an older operator set 'external-secrets.io/v1beta1'
    // (same fields).
    externalSecretApiVersion:: 'external-secrets.io/v1',

    // externalSecret(svc, store): ExternalSecret (externalSecretApiVersion)
    // for the entries of svc.secrets in `store`.
    externalSecret(svc, store):: externalSecret.new(lib, svc, store),

    // externalSecrets(svc): all of the service's ExternalSecrets ([] without secrets).
    externalSecrets(svc):: [lib.externalSecret(svc, st) for st in lib.secretStores(svc)],

    // terraformCloud: organization, API token Secret and apply method of
    // every Workspace/Module. organization = params.tfc_organization when
    // the environment sets it, else state.part_of.
    terraformCloud:: {
      organization: if std.objectHas(state.params, 'tfc_organization')
      then state.params.tfc_organization else state.part_of,
      tokenSecretKeyRef: { name: 'tfc-operator', key: 'token' },
      applyMethod: 'auto',
    },

    // terraformWorkspaceName(svc, name): the HCP Terraform workspace name
    // (unique per organization, so it carries the environment).
    terraformWorkspaceName(svc, name):: state.env + '-' + svc.name + '-' + util.dnsName(name),

    // workspace(svc, name, res): app.terraform.io/v1alpha2 Workspace for
    // svc.resources[name], named `<svc-name>-<name>`, with res.variables.
    workspace(svc, name, res):: workspace.workspace(lib, svc, name, res),

    // terraformModule(svc, name, res): app.terraform.io/v1alpha2 Module that
    // runs res.module in that Workspace. `terraformModule(svc, name, res):: null`
    // keeps only the Workspaces.
    terraformModule(svc, name, res):: workspace.module(lib, svc, name, res),

    // terraformResources(svc): Workspace then Module of each resource, in name order.
    terraformResources(svc):: std.flatMap(
      function(name) [
        lib.workspace(svc, name, svc.resources[name]),
        lib.terraformModule(svc, name, svc.resources[name]),
      ],
      std.objectFields(svc.resources),
    ),

    // serviceManifests(svc): every object of one service. Append to add a
    // kind per service:
    //   serviceManifests(svc):: super.serviceManifests(svc) + [ ... ],
    serviceManifests(svc)::
      [lib.serviceAccount(svc), lib.configMapOf(svc)]
      + lib.externalSecrets(svc)
      + [
        lib.service(svc),
        lib.deployment(svc),
        if svc.autoscaling != null then lib.hpa(svc),
        if svc.disruption_budget != null then lib.pdb(svc),
        if svc.ingress != null then lib.ingress(svc),
      ]
      + lib.terraformResources(svc),

    // ---- environment-wide objects ----------------------------------------

    // sealedSecret(name, s): bitnami.com/v1alpha1 SealedSecret for
    // state.sealed_secrets[name], in s.namespace.
    sealedSecret(name, s):: sealedSecret.new(lib, name, s),

    // sealedSecrets: all SealedSecrets of the environment, in name order.
    sealedSecrets:: [
      lib.sealedSecret(name, state.sealed_secrets[name])
      for name in std.objectFields(state.sealed_secrets)
    ],

    // extraManifests: objects a repo adds that belong to no service.
    extraManifests:: [],

    // ---- output ----------------------------------------------------------

    // unit: which objects this evaluation renders. controlcenter evaluates
    // each service on its own (state.unit: 'service', state.unit_service
    // its key; state.services names every service but holds that one's
    // state only) and the environment-level objects apart
    // (state.unit: 'environment'); a state without `unit` (any other
    // engine, or settings.evaluation: environment) renders everything.
    unit:: if std.objectHas(state, 'unit') then state.unit else 'all',

    // manifests: the array to return; nulls removed. controlcenter sorts it
    // (kind install order, namespace, name), so the order here is cosmetic.
    manifests: util.compact(
      (if lib.unit == 'environment' then []
       else std.flatMap(function(svc) lib.serviceManifests(svc), lib.services))
      + (if lib.unit == 'service' then []
         else lib.sealedSecrets + lib.extraManifests)
    ),
  },
}
