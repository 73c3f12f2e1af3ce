// lib-jsonnet/main.jsonnet: the default entry point. Receives the resolved
// state (docs/state.md) as the top-level argument `state` and returns the
// array of Kubernetes objects the library renders for it. A repo that ships
// its own jsonnet/main.jsonnet replaces this file.
//
//   jsonnet -J lib-jsonnet --tla-code-file state=state.json lib-jsonnet/main.jsonnet
local cc = import 'controlcenter/lib.libsonnet';

function(state) cc.new(state).manifests
