//! The real `tollgate` binary as a child process: started with an environment, killed with
//! SIGKILL when dropped (no graceful anything), stopped with SIGTERM when asked.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually;

/// The binary with exactly `envs` as its environment.
pub fn tollgate(envs: &[(&str, &str)]) -> Command {
    let mut command = super::binary();
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `tollgate`; dropping it is `kill -9`.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tollgate <command…>` with `envs`, its stdout discarded.
pub fn running(envs: &[(&str, &str)], command: &str) -> Running {
    Running(
        tollgate(envs)
            .args(command.split_whitespace())
            .stdout(Stdio::null())
            .spawn()
            .expect("starts"),
    )
}

pub async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(30), || async {
        let response = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "tollgate on port {port} never became ready"
    );
}
