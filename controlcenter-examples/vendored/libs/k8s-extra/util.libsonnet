// Helpers shared by k8s-extra's constructors.
{
  // The skeleton of an object of `kind` in `apiVersion`.
  object(apiVersion, kind, name):: {
    apiVersion: apiVersion,
    kind: kind,
    metadata: { name: name },
  },
  // `fields` without its empty maps.
  prune(fields):: { [k]: fields[k] for k in std.objectFields(fields) if fields[k] != {} },
}
