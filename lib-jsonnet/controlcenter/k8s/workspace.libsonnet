// controlcenter/k8s/workspace.libsonnet: the Terraform Cloud Operator
// (HCP Terraform Operator, app.terraform.io/v1alpha2) objects of one entry
// of a service's `resources`: a Workspace holding the module's variables and
// a Module running `module` in that workspace, both named
// `<svc-name>-<resource-name>`. Reached through lib.workspace(svc, name, res),
// lib.terraformModule(svc, name, res) and lib.terraformResources(svc); the
// organization and API token come from lib.terraformCloud.
local util = import '../util.libsonnet';

{
  // objectName(svc, name): Kubernetes name of both objects.
  objectName(svc, name):: svc.name + '-' + util.dnsName(name),

  // variable(name, value): a Workspace terraformVariables entry; non-string
  // values are written as HCL (JSON literals are valid HCL expressions).
  variable(name, value)::
    if std.type(value) == 'string' then { name: name, value: value }
    else { name: name, value: std.manifestJsonMinified(value), hcl: true },

  // workspace(lib, svc, name, res): the Workspace.
  workspace(lib, svc, name, res)::
    local tfc = lib.terraformCloud;
    {
      apiVersion: 'app.terraform.io/v1alpha2',
      kind: 'Workspace',
      metadata: lib.metadata(svc, $.objectName(svc, name)),
      spec: {
        organization: tfc.organization,
        token: { secretKeyRef: tfc.tokenSecretKeyRef },
        name: lib.terraformWorkspaceName(svc, name),
        description: 'controlcenter: resource ' + name + ' of service ' + svc.key + ' in env ' + lib.state.env,
        applyMethod: tfc.applyMethod,
        [if std.length(res.variables) > 0 then 'terraformVariables']:
          [$.variable(v, res.variables[v]) for v in std.objectFields(res.variables)],
      },
    },

  // module(lib, svc, name, res): the Module that runs res.module in the Workspace.
  module(lib, svc, name, res)::
    local tfc = lib.terraformCloud;
    {
      apiVersion: 'app.terraform.io/v1alpha2',
      kind: 'Module',
      metadata: lib.metadata(svc, $.objectName(svc, name)),
      spec: {
        organization: tfc.organization,
        token: { secretKeyRef: tfc.tokenSecretKeyRef },
        module: { source: res.module },
        workspace: { name: lib.terraformWorkspaceName(svc, name) },
        [if std.length(res.variables) > 0 then 'variables']: [{ name: v } for v in std.objectFields(res.variables)],
      },
    },
}
