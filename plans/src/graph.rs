//! The dependency graph (petgraph): explicit edges from the policy, forward-auth edges found in
//! the inventory, and alias groups (two names of one app on one host move together).

use crate::error::PlanError;
use crate::id::ServiceId;
use crate::policy::Policy;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet};
use tailshift_parsers::{Inventory, Service};

/// Why an edge exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// `[plan.dependencies]`.
    Policy,
    /// The service's forward auth is the other service.
    ForwardAuth,
}

impl EdgeKind {
    /// As the plan file writes it in a [`Dependency`](crate::id::Dependency).
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Policy => "policy",
            EdgeKind::ForwardAuth => "forward auth",
        }
    }

    /// The kind [`EdgeKind::as_str`] writes as `text`.
    pub fn parse(text: &str) -> Option<EdgeKind> {
        match text {
            "policy" => Some(EdgeKind::Policy),
            "forward auth" => Some(EdgeKind::ForwardAuth),
            _ => None,
        }
    }
}

/// Services as nodes, "depends on" as edges (from the dependent to its dependency).
pub struct DepGraph {
    /// The graph; node weights are indexes into the inventory's services.
    pub graph: DiGraph<usize, EdgeKind>,
    /// Node of each service, by inventory index.
    pub nodes: Vec<NodeIndex>,
    /// Alias group of each service (an index of the group's first member).
    pub alias_of: Vec<usize>,
    /// Forward-auth URLs that name no service of the inventory: (service index, URL).
    pub external_auth: Vec<(usize, String)>,
}

/// Service lookup by id and by name, built once per plan.
pub struct Index {
    by_id: std::collections::HashMap<ServiceId, usize>,
    by_name: std::collections::HashMap<String, Vec<usize>>,
}

impl Index {
    /// Indexes an inventory's services.
    pub fn new(inv: &Inventory) -> Index {
        let mut by_id = std::collections::HashMap::new();
        let mut by_name: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, s) in inv.services.iter().enumerate() {
            by_id.insert(ServiceId::of(s), i);
            by_name.entry(s.name.clone()).or_default().push(i);
        }
        Index { by_id, by_name }
    }

    /// Services with a name.
    pub fn named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Resolves a policy reference (`name` or `host/name`) to an inventory index.
    pub fn resolve(&self, inv: &Inventory, key: &str, reference: &str) -> Result<usize, PlanError> {
        if reference.contains('/') {
            return self.by_id.get(reference).copied().ok_or_else(|| PlanError::UnknownService {
                key: key.into(),
                name: reference.into(),
                hint: String::new(),
            });
        }
        match self.named(reference) {
            [one] => Ok(*one),
            [] => Err(PlanError::UnknownService {
                key: key.into(),
                name: reference.into(),
                hint: String::new(),
            }),
            many => Err(PlanError::UnknownService {
                key: key.into(),
                name: reference.into(),
                hint: format!(
                    " on a single host: it names {}; write host/name",
                    many.iter()
                        .map(|i| ServiceId::of(&inv.services[*i]).to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            }),
        }
    }
}

/// What identifies an upstream for alias detection: the URL's authority and path, or the
/// unix socket.
fn upstream_key(s: &Service) -> Option<String> {
    if let Some(sock) = s.effective.str("upstreamUnixAddr") {
        return Some(format!("unix:{sock}"));
    }
    let url = url::Url::parse(s.effective.str("toURL")?).ok()?;
    Some(format!(
        "{}://{}:{}{}",
        url.scheme(),
        url.host_str()?,
        url.port_or_known_default()?,
        url.path()
    ))
}

/// Finds the service an `authURL` names: `<name>.<tailnet>`, a short name, or a local upstream.
fn auth_target(
    inv: &Inventory,
    index: &Index,
    tailnet: &str,
    from: usize,
    auth_url: &str,
) -> Option<usize> {
    let url = url::Url::parse(auth_url).ok()?;
    let host = url.host_str()?;
    let me = &inv.services[from];
    let name = host.strip_suffix(&format!(".{tailnet}")).or((!host.contains('.')).then_some(host));
    if let Some(name) = name {
        return match index.named(name) {
            [one] => Some(*one),
            [] => None,
            many => {
                many.iter().copied().find(|i| inv.services[*i].host == me.host).or(Some(many[0]))
            }
        };
    }
    if matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]") {
        let port = url.port_or_known_default()?;
        return inv.services.iter().position(|s| {
            s.host == me.host
                && s.effective
                    .str("toURL")
                    .and_then(|u| url::Url::parse(u).ok())
                    .is_some_and(|u| u.port_or_known_default() == Some(port))
        });
    }
    None
}

impl DepGraph {
    /// Builds the graph; a cycle is an error naming the services in it.
    pub fn build(inv: &Inventory, index: &Index, policy: &Policy) -> Result<DepGraph, PlanError> {
        let resolve = |key: &str, r: &str| index.resolve(inv, key, r);
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..inv.services.len()).map(|i| graph.add_node(i)).collect();
        let mut external_auth = Vec::new();
        let mut edges: BTreeSet<(usize, usize, EdgeKind)> = BTreeSet::new();
        for (svc, deps) in &policy.dependencies {
            let from = resolve("dependencies", svc)?;
            for d in deps {
                let to = resolve(&format!("dependencies.{svc}"), d)?;
                edges.insert((from, to, EdgeKind::Policy));
            }
        }
        for (i, s) in inv.services.iter().enumerate() {
            if let Some(auth) = s.effective.str("authURL") {
                match auth_target(inv, index, &policy.tailnet, i, auth) {
                    Some(j) if j != i => {
                        edges.insert((i, j, EdgeKind::ForwardAuth));
                    }
                    Some(_) => {}
                    None => external_auth.push((i, auth.to_string())),
                }
            }
        }
        for (a, b, k) in edges {
            graph.add_edge(nodes[a], nodes[b], k);
        }
        for scc in petgraph::algo::tarjan_scc(&graph) {
            let cyclic = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
            if cyclic {
                let mut names: Vec<String> = scc
                    .iter()
                    .map(|n| ServiceId::of(&inv.services[graph[*n]]).to_string())
                    .collect();
                names.sort();
                names.push(names[0].clone());
                return Err(PlanError::Cycle(names));
            }
        }
        // Aliases: one host, one upstream.
        let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut alias_of = Vec::with_capacity(inv.services.len());
        for (i, s) in inv.services.iter().enumerate() {
            let key = upstream_key(s).map(|u| (s.host.known().cloned().unwrap_or_default(), u));
            let root = match key {
                Some(k) => *groups.entry(k).or_insert(i),
                None => i,
            };
            alias_of.push(root);
        }
        Ok(DepGraph { graph, nodes, alias_of, external_auth })
    }

    /// Inventory indexes of what a service depends on, directly.
    pub fn dependencies(&self, i: usize) -> Vec<usize> {
        let mut v: Vec<usize> =
            self.graph.neighbors(self.nodes[i]).map(|n| self.graph[n]).collect();
        v.sort_unstable();
        v
    }

    /// Inventory indexes of the services that depend on a service, directly.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .graph
            .neighbors_directed(self.nodes[i], petgraph::Direction::Incoming)
            .map(|n| self.graph[n])
            .collect();
        v.sort_unstable();
        v
    }

    /// Why `from` depends on `to`, if it does.
    pub fn edge_kind(&self, from: usize, to: usize) -> Option<EdgeKind> {
        self.graph.find_edge(self.nodes[from], self.nodes[to]).map(|e| self.graph[e])
    }
}
