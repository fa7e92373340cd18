//! A three-node OpenBao cluster with integrated storage (Raft) on loopback, with the default
//! Raft timing: each node its own process, directory and ports, joined with `retry_join`,
//! initialised and unsealed through the HTTP API, and ready once all three are voters (before
//! that, killing the leader would lose the quorum). Killed and sealed on demand, for failover
//! tests; stopped on drop.

// Test support writes configs directly and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bao::{free_port, http};
use crate::require;

/// One node of the cluster.
pub struct Node {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
}

impl Node {
    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// A running three-node cluster.
pub struct BaoCluster {
    /// The nodes, in the order they were started (the first was initialised).
    pub nodes: Vec<Node>,
    /// The root token.
    pub token: String,
    /// The cluster's directory (configs, Raft data, logs).
    pub dir: tempfile::TempDir,
    unseal_key: String,
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// How long the cluster may take to form (measured: about 31 s with default timing).
const FORM_LIMIT: Duration = Duration::from_secs(120);

impl BaoCluster {
    /// Starts and forms the cluster, or `None` when `bao` is missing outside CI (under CI it
    /// fails).
    pub fn start() -> Option<Self> {
        if !require(&["bao"]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let joins: String = ports
            .iter()
            .map(|(api, _)| {
                format!("  retry_join {{ leader_api_addr = \"http://127.0.0.1:{api}\" }}\n")
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, (api, cluster)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("data{i}"));
            std::fs::create_dir(&data).unwrap();
            let config = dir.path().join(format!("node{i}.hcl"));
            std::fs::write(
                &config,
                format!(
                    "ui = false\nlog_level = \"info\"\n\
                     api_addr = \"http://127.0.0.1:{api}\"\n\
                     cluster_addr = \"https://127.0.0.1:{cluster}\"\n\
                     listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  \
                     cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                     storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node{i}\"\n{joins}}}\n",
                    data.display()
                ),
            )
            .unwrap();
            let child = Command::new("bao")
                .args(["server", &format!("-config={}", config.display())])
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(log(dir.path(), &format!("node{i}.out")))
                .stderr(log(dir.path(), &format!("node{i}.err")))
                .spawn()
                .expect("start bao");
            nodes.push(Node {
                child: Some(child),
                addr: format!("http://127.0.0.1:{api}"),
            });
        }
        let mut cluster = Self {
            nodes,
            token: String::new(),
            dir,
            unseal_key: String::new(),
        };
        cluster.form();
        Some(cluster)
    }

    /// Initialises the first node, unseals all three and waits for three voters.
    fn form(&mut self) {
        let started = Instant::now();
        // Uninitialised, a node answers /sys/health with 501.
        self.wait(0, started, |s| s.is_some(), "the first node's API");
        let (status, body) = self.api(
            0,
            "PUT",
            "/v1/sys/init",
            Some(r#"{"secret_shares":1,"secret_threshold":1}"#),
        );
        assert_eq!(status, 200, "init: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        self.token = v["root_token"].as_str().unwrap().to_owned();
        self.unseal_key = v["keys"][0].as_str().unwrap().to_owned();
        self.unseal(0);
        self.wait(0, started, |s| s == Some(200), "the first node active");
        for i in 1..3 {
            // A joiner accepts the key only once it has fetched the Raft challenge.
            self.wait_until(started, &format!("node {i} to take its key"), |c| {
                c.unseal(i);
                c.health(i) == Some(429)
            });
        }
        self.wait_until(started, "three Raft voters", |c| c.voters() == 3);
    }

    fn wait(&self, i: usize, started: Instant, done: impl Fn(Option<u16>) -> bool, what: &str) {
        self.wait_until(started, what, |c| done(c.health(i)));
    }

    fn wait_until(&self, started: Instant, what: &str, mut done: impl FnMut(&Self) -> bool) {
        while !done(self) {
            assert!(
                started.elapsed() < FORM_LIMIT,
                "the cluster did not form: waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends the unseal key to node `i` (an error answer is ignored: the caller waits).
    pub fn unseal(&self, i: usize) {
        let body = serde_json::json!({ "key": self.unseal_key }).to_string();
        let _ = http(
            &self.nodes[i].addr,
            None,
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(&body),
        );
    }

    /// `/v1/sys/health` of node `i`: 200 active, 429 standby, 503 sealed, 501 not initialised;
    /// `None` when it does not answer.
    pub fn health(&self, i: usize) -> Option<u16> {
        http(
            &self.nodes[i].addr,
            None,
            "GET",
            "/v1/sys/health",
            None,
            None,
        )
        .ok()
        .map(|(s, _)| s)
    }

    /// The Raft voters, as the active node sees them (0 when no node answers).
    pub fn voters(&self) -> usize {
        (0..self.nodes.len())
            .find_map(|i| {
                let (status, body) = http(
                    &self.nodes[i].addr,
                    None,
                    "GET",
                    "/v1/sys/storage/raft/configuration",
                    Some(&self.token),
                    None,
                )
                .ok()?;
                if status != 200 {
                    return None;
                }
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let servers = v["data"]["config"]["servers"].as_array()?.clone();
                Some(servers.iter().filter(|s| s["voter"] == true).count())
            })
            .unwrap_or(0)
    }

    /// The node that is active now, if one is.
    pub fn active(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.health(i) == Some(200))
    }

    /// Waits up to `limit` for an active node; which one.
    pub fn wait_active(&self, limit: Duration) -> Option<usize> {
        let started = Instant::now();
        loop {
            if let Some(i) = self.active() {
                return Some(i);
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills node `i` with SIGKILL (no chance to step down) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Seals node `i`.
    pub fn seal(&self, i: usize) {
        let (status, body) = self.api(i, "PUT", "/v1/sys/seal", None);
        assert!(status == 204 || status == 200, "seal: {status} {body}");
        assert_eq!(self.health(i), Some(503));
    }

    /// One API request to node `i` with the root token; panics on a transport failure.
    pub fn api(&self, i: usize, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let token = (!self.token.is_empty()).then_some(self.token.as_str());
        http(&self.nodes[i].addr, None, method, path, token, body)
            .unwrap_or_else(|e| panic!("{method} {path} on node {i}: {e}"))
    }

    /// [`BaoCluster::api`], with a transport failure as status 0.
    pub fn try_api(&self, i: usize, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let token = (!self.token.is_empty()).then_some(self.token.as_str());
        http(&self.nodes[i].addr, None, method, path, token, body)
            .unwrap_or_else(|e| (0, e.to_string()))
    }

    /// Every node's log, for assertion messages.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("node{i}.err")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- node {i}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn log(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}
