//! Resource identity and output order. One [`ResourceId`] serves duplicate
//! detection and sorting; the sort key is total, so output order never
//! depends on evaluation order.

use std::cmp::Ordering;

use serde_json::Value as Json;

/// Helm's install order of kinds; unknown kinds sort after all of these.
pub const KIND_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// What makes two objects the same object for Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// API group (`apps`, `` for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty when unset.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// What makes a Kubernetes object unique in one render.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceId {
    /// `apiVersion` as written (`apps/v1`).
    pub api_version: String,
    /// API group (`apps`, `` for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty when unset.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ResourceId {
    /// Reads the identity of an object that has apiVersion, kind and metadata.name.
    pub fn of(obj: &Json) -> Option<Self> {
        let api_version = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        let meta = obj.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        let namespace = meta
            .get("namespace")
            .and_then(Json::as_str)
            .unwrap_or_default();
        Some(ResourceId::from_parts(api_version, kind, namespace, name))
    }

    /// The identity of these parts (the group is `api_version`'s).
    pub fn from_parts(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ResourceId {
            api_version: api_version.to_owned(),
            group: api_version
                .rsplit_once('/')
                .map_or("", |(g, _)| g)
                .to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The object's identity for Kubernetes: group, kind, namespace, name
    /// (the version of the group does not matter). The one key of
    /// duplicate detection, diffs and lookups.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// [`ResourceId::key`] borrowed: (group, kind, namespace, name).
    pub fn key_parts(&self) -> (&str, &str, &str, &str) {
        (&self.group, &self.kind, &self.namespace, &self.name)
    }

    /// Same object for Kubernetes (same [`ResourceId::key`]).
    pub fn same_object(&self, other: &Self) -> bool {
        self.key() == other.key()
    }

    /// `Deployment/dev/service-rpps`.
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }

    fn kind_rank(&self) -> usize {
        KIND_ORDER
            .iter()
            .position(|k| *k == self.kind)
            .unwrap_or(KIND_ORDER.len())
    }

    /// Output order: known kinds by install order, unknown kinds after them
    /// by apiVersion then kind; then namespace, then name.
    pub fn output_order(&self, other: &Self) -> Ordering {
        let (a, b) = (self.kind_rank(), other.kind_rank());
        a.cmp(&b).then_with(|| self.order_in_rank(other, a))
    }

    /// [`ResourceId::output_order`] of two objects whose kinds have the
    /// same `rank`.
    fn order_in_rank(&self, other: &Self, rank: usize) -> Ordering {
        Ordering::Equal
            .then_with(|| {
                if rank == KIND_ORDER.len() {
                    (&self.api_version, &self.kind).cmp(&(&other.api_version, &other.kind))
                } else {
                    Ordering::Equal
                }
            })
            .then_with(|| self.namespace.cmp(&other.namespace))
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.api_version.cmp(&other.api_version))
            .then_with(|| self.kind.cmp(&other.kind))
    }
}

/// Sorts `items` in [`ResourceId::output_order`] (stably), each kind's
/// rank looked up once per item rather than at every comparison. Their
/// places are sorted, then the items swapped into place along the cycles
/// of that order: a sort of the items themselves moves each of them many
/// times.
pub fn sort_in_output_order<T>(items: &mut [T], id: impl Fn(&T) -> &ResourceId) {
    let mut order: Vec<(usize, usize)> = items
        .iter()
        .enumerate()
        .map(|(at, item)| (id(item).kind_rank(), at))
        .collect();
    order.sort_by(|(rank_a, a), (rank_b, b)| {
        rank_a
            .cmp(rank_b)
            .then_with(|| id(&items[*a]).order_in_rank(id(&items[*b]), *rank_a))
    });
    // Moved into place along each cycle of the order: no second list of
    // tens of thousands of objects.
    let mut placed = vec![false; items.len()];
    for start in 0..items.len() {
        let mut at = start;
        while !placed[at] {
            placed[at] = true;
            let from = order[at].1;
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(api: &str, kind: &str, ns: &str, name: &str) -> ResourceId {
        ResourceId::of(
            &json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}}),
        )
        .unwrap()
    }

    #[test]
    fn install_order_then_unknown_then_namespace_and_name() {
        let mut ids = vec![
            id("example.com/v1", "Widget", "a", "x"),
            id("apps/v1", "Deployment", "b", "a"),
            id("v1", "Service", "a", "z"),
            id("apps/v1", "Deployment", "a", "b"),
            id("v1", "Namespace", "", "a"),
            id("bitnami.com/v1alpha1", "SealedSecret", "a", "s"),
        ];
        let mut sorted = ids.clone();
        sort_in_output_order(&mut sorted, |id| id);
        ids.sort_by(ResourceId::output_order);
        assert_eq!(sorted, ids);
        let order: Vec<String> = ids.iter().map(ResourceId::display).collect();
        assert_eq!(
            order,
            [
                "Namespace/a",
                "Service/a/z",
                "Deployment/a/b",
                "Deployment/b/a",
                "SealedSecret/a/s",
                "Widget/a/x"
            ]
        );
    }

    #[test]
    fn objects_are_moved_into_output_order_in_place() {
        // Enough objects, in a scrambled order, for long cycles.
        let kinds = ["Deployment", "Service", "ConfigMap", "Namespace", "Widget"];
        let ids: Vec<ResourceId> = (0..500usize)
            .map(|i| {
                let n = (i * 7919) % 500;
                id(
                    "v1",
                    kinds[n % kinds.len()],
                    "ns",
                    &format!("obj-{:03}", n / 5),
                )
            })
            .collect();
        let mut expected = ids.clone();
        expected.sort_by(|a, b| {
            a.kind_rank()
                .cmp(&b.kind_rank())
                .then_with(|| a.order_in_rank(b, a.kind_rank()))
        });
        let mut sorted = ids.clone();
        sort_in_output_order(&mut sorted, |id| id);
        assert_eq!(sorted, expected);

        // Stable: objects of one identity keep their order.
        let tagged: Vec<(ResourceId, usize)> = ids
            .into_iter()
            .map(|i| (i, 0))
            .chain(
                expected
                    .iter()
                    .rev()
                    .cloned()
                    .enumerate()
                    .map(|(n, i)| (i, n + 1)),
            )
            .collect();
        let mut stable = tagged.clone();
        stable.sort_by(|(a, _), (b, _)| {
            a.kind_rank()
                .cmp(&b.kind_rank())
                .then_with(|| a.order_in_rank(b, a.kind_rank()))
        });
        let mut moved = tagged;
        sort_in_output_order(&mut moved, |(id, _)| id);
        assert_eq!(moved, stable);

        for mut few in [Vec::new(), vec![expected[0].clone()]] {
            let before = few.clone();
            sort_in_output_order(&mut few, |id| id);
            assert_eq!(few, before);
        }
    }

    #[test]
    fn identity_ignores_the_group_version() {
        let a = id("autoscaling/v1", "HorizontalPodAutoscaler", "n", "x");
        let b = id("autoscaling/v2", "HorizontalPodAutoscaler", "n", "x");
        assert!(a.same_object(&b));
    }
}
