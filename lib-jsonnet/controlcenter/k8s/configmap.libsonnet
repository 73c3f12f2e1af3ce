// controlcenter/k8s/configmap.libsonnet: the v1 ConfigMap of a service:
// its `env` plus one FLAG_<UPPER_SNAKE_NAME> = "true"/"false" per flag (a
// flag wins over an env variable of the same name). All values are strings.
// Reached through lib.configMap(svc); the Deployment loads it with envFrom
// and hashes its data into the checksum/config pod annotation.
local util = import '../util.libsonnet';

{
  // flagKey(name): the ConfigMap key of a flag ('new_checkout' -> 'FLAG_NEW_CHECKOUT').
  flagKey(name):: 'FLAG_' + util.upperSnake(name),

  // data(svc): env and flags as one string -> string map.
  data(svc)::
    { [k]: util.text(svc.env[k]) for k in std.objectFields(svc.env) }
    + { [$.flagKey(f)]: if svc.flags[f] then 'true' else 'false' for f in std.objectFields(svc.flags) },

  // new(lib, svc): the ConfigMap.
  new(lib, svc):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: lib.metadata(svc, svc.name),
    data: $.data(svc),
  },
}
