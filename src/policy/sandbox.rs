//! The budget of policy work: repository policies are untrusted code, and
//! regorus can neither stop itself in memory (a `numbers.range` of 3·10⁸
//! aborts the process on one 7 GB allocation) nor on recursion (a function
//! that calls itself overflows the stack: an abort), and its parser can
//! spend 23 s on a 70-byte literal. So parsing, compiling, evaluating and
//! testing policies run in a worker: the shoal binary itself
//! (`shoal __policy-worker`), one process per job, with an address-space
//! limit, a CPU-time limit and a wall-clock kill. Whatever the policy does,
//! the caller gets a [`PolicyError::Budget`] naming the policy files and
//! the budget, and apply is blocked.
//!
//! The binary opts in with [`use_worker`] at start-up; without it (library
//! unit tests, benches) policies run in-process as before.
use super::error::PolicyError;
use super::modules::RegoFile;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

/// The first argument that turns the shoal binary into a policy worker.
pub const WORKER_ARG: &str = "__policy-worker";

/// Time and memory one policy job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Wall-clock time, from spawn to answer.
    pub time: Duration,
    /// Address space of the worker (RLIMIT_AS), bytes.
    pub memory: u64,
}

/// Loading and evaluating the policies for one stack. The shipped policies
/// evaluate a 200-service stack in ~16 ms: 5 s is 300 times that, short
/// enough that a stuck evaluation does not hold a reconcile for long.
/// 256 MiB of address space holds the binary, the engine and an input of
/// thousands of services, and keeps a runaway policy well under the memory
/// of a small manager.
pub const EVALUATION: Budget = Budget {
    time: Duration::from_secs(5),
    memory: 256 << 20,
};

/// `shoal policy test` runs every test rule of the repository in one job,
/// by a person or CI rather than the agent: more time, same memory.
pub const TESTS: Budget = Budget {
    time: Duration::from_secs(60),
    memory: 256 << 20,
};

static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Run policy jobs in `exe __policy-worker` processes from now on (the
/// shoal binary passes its own path). Only the first call counts.
pub fn use_worker(exe: PathBuf) {
    let _ = WORKER.set(exe);
}

/// The worker binary, when policies run out of process.
pub(crate) fn worker() -> Option<&'static Path> {
    WORKER.get().map(PathBuf::as_path)
}

/// What a worker is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Job {
    /// Compile the files; answer the result rules ([`super::results::ResultRule`]).
    Load { files: Vec<RegoFile> },
    /// Compile the files and evaluate the rules over `input` (JSON);
    /// answer each rule's value as JSON.
    Evaluate {
        files: Vec<RegoFile>,
        rules: Vec<super::results::ResultRule>,
        query: String,
        stack: String,
        input: String,
    },
    /// Run the unit tests; answer the test cases.
    Test { files: Vec<RegoFile> },
}

impl Job {
    fn files(&self) -> &[RegoFile] {
        match self {
            Job::Load { files } | Job::Evaluate { files, .. } | Job::Test { files } => files,
        }
    }

    /// What the job is, for errors: `loading the policies`.
    fn doing(&self) -> String {
        match self {
            Job::Load { .. } => "loading the policies".into(),
            Job::Evaluate { stack, .. } => format!("evaluating the policies for stack {stack}"),
            Job::Test { .. } => "running the policy tests".into(),
        }
    }

    /// Runs the job in this process: what the worker does.
    fn run_here(self) -> Result<serde_json::Value, PolicyError> {
        let encode = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| PolicyError::Read {
                path: super::POLICY_DIR.into(),
                message: format!("cannot encode the policy worker's answer: {e}"),
            })
        };
        match self {
            Job::Load { files } => {
                let set = super::PolicySet::from_files(files)?;
                encode(serde_json::to_value(set.rules))
            }
            Job::Evaluate {
                files,
                rules,
                query,
                stack,
                input,
            } => {
                let mut engine = super::modules::compile(&files)?;
                let values = super::rule_values(&mut engine, &rules, &query, &stack, &input)?;
                encode(serde_json::to_value(values))
            }
            Job::Test { files } => {
                let report = super::testing::tests_of(files);
                match report.errors.into_iter().next() {
                    Some(e) => Err(e),
                    None => encode(serde_json::to_value(report.tests)),
                }
            }
        }
    }
}

/// Runs `job` in a worker within `budget`, or in-process when no worker is
/// set (see [`use_worker`]).
pub(crate) fn run<T: DeserializeOwned>(job: Job, budget: Budget) -> Result<T, PolicyError> {
    let answer = match worker() {
        None => job.run_here()?,
        Some(exe) => in_worker(exe, &job, budget)?,
    };
    serde_json::from_value(answer).map_err(|e| PolicyError::Read {
        path: super::POLICY_DIR.into(),
        message: format!("cannot read the policy worker's answer: {e}"),
    })
}

/// What the worker writes on stdout.
type Answer = Result<serde_json::Value, PolicyError>;

fn in_worker(exe: &Path, job: &Job, budget: Budget) -> Result<serde_json::Value, PolicyError> {
    let over = |reason: String| PolicyError::Budget {
        files: job.files().iter().map(|f| f.path.clone()).collect(),
        doing: job.doing(),
        reason,
    };
    let request =
        serde_json::to_vec(job).map_err(|e| over(format!("cannot encode the policy job: {e}")))?;
    // The worker gets no environment: nothing of the agent's (keys,
    // tokens) is there for a policy to read.
    let mut child = Command::new(exe)
        .arg(WORKER_ARG)
        .arg(budget.memory.to_string())
        .arg(budget.time.as_secs().saturating_add(1).to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            over(format!(
                "cannot start the policy worker {}: {e}",
                exe.display()
            ))
        })?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(over("the policy worker has no pipes".into()));
    };
    // A worker that dies early closes its stdin: the write error is then
    // not the story, its exit status is.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&request);
    });
    let errors = std::thread::spawn(move || head_of(stderr, 16 << 10));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = stdout.read_to_end(&mut out).map(|_| out);
        let _ = done.send(read);
    });
    // stdout closes when the worker exits: that is the answer or the end.
    let output = finished.recv_timeout(budget.time);
    if output.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let _ = writer.join();
    let stderr = errors.join().unwrap_or_default();
    let Ok(output) = output else {
        return Err(over(format!(
            "it ran past the time budget of {} s and was stopped",
            budget.time.as_secs()
        )));
    };
    let status = status.map_err(|e| over(format!("cannot wait for the policy worker: {e}")))?;
    if !status.success() {
        return Err(over(why_stopped(status, &stderr, budget)));
    }
    let output = output.map_err(|e| over(format!("cannot read the policy worker: {e}")))?;
    let answer: Answer = serde_json::from_slice(&output)
        .map_err(|e| over(format!("the policy worker gave no readable answer: {e}")))?;
    answer
}

/// At most `cap` bytes of `from`, reading (and dropping) the rest so the
/// writer never blocks on a full pipe.
fn head_of(mut from: impl Read, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Why a worker ended without an answer, in the words of the budget.
fn why_stopped(status: ExitStatus, stderr: &str, budget: Budget) -> String {
    use std::os::unix::process::ExitStatusExt;
    if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        return format!(
            "it needed more than the memory budget of {} MiB and was stopped",
            budget.memory >> 20
        );
    }
    if stderr.contains("overflowed its stack") {
        return "it overflowed the stack and was stopped (unbounded recursion, such as a \
                function or rule that calls itself?)"
            .into();
    }
    if status.signal() == Some(libc::SIGXCPU) {
        return format!(
            "it ran past the time budget of {} s and was stopped",
            budget.time.as_secs()
        );
    }
    if status.signal() == Some(libc::SIGKILL) {
        return "it was killed (by the system's out-of-memory killer?)".into();
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    format!(
        "the policy worker stopped ({status}){}",
        last.map(|l| format!(": {l}")).unwrap_or_default()
    )
}

/// `shoal __policy-worker <memory bytes> <cpu seconds>`: limits itself,
/// reads one [`Job`] as JSON on stdin, writes the answer as JSON on stdout.
/// Returns the exit code.
pub fn worker_main(args: &[String]) -> u8 {
    let (Some(memory), Some(cpu)) = (
        args.first().and_then(|a| a.parse::<u64>().ok()),
        args.get(1).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: shoal {WORKER_ARG} <memory bytes> <cpu seconds>");
        return 2;
    };
    if let Err(e) = limit(libc::RLIMIT_AS, memory).and_then(|_| limit(libc::RLIMIT_CPU, cpu)) {
        eprintln!("policy worker: cannot set its limits: {e}");
        return 1;
    }
    let mut request = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut request) {
        eprintln!("policy worker: cannot read the job: {e}");
        return 1;
    }
    let answer: Answer = match serde_json::from_slice::<Job>(&request) {
        Ok(job) => job.run_here(),
        Err(e) => {
            eprintln!("policy worker: not a policy job: {e}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &answer)
        .map_err(std::io::Error::from)
        .and_then(|()| out.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("policy worker: cannot write the answer: {e}");
            1
        }
    }
}

#[cfg(target_os = "linux")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_os = "linux"))]
type Resource = libc::c_int;

/// Sets the soft and hard limit of `resource` for this process.
fn limit(resource: Resource, value: u64) -> std::io::Result<()> {
    let rlim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and touches no memory of ours.
    if unsafe { libc::setrlimit(resource, &rlim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn killed_by(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    #[test]
    fn a_stopped_worker_is_described_by_its_budget() {
        let abort = killed_by(libc::SIGABRT);
        let memory = why_stopped(
            abort,
            "memory allocation of 7200000000 bytes failed\n",
            EVALUATION,
        );
        assert_eq!(
            memory,
            "it needed more than the memory budget of 256 MiB and was stopped"
        );
        let stack = why_stopped(
            abort,
            "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n",
            EVALUATION,
        );
        assert!(stack.contains("overflowed the stack"), "{stack}");
        let cpu = why_stopped(killed_by(libc::SIGXCPU), "", EVALUATION);
        assert_eq!(cpu, "it ran past the time budget of 5 s and was stopped");
        let other = why_stopped(ExitStatus::from_raw(1 << 8), "boom\n\n", EVALUATION);
        assert!(other.ends_with(": boom"), "{other}");
    }

    #[test]
    fn the_budget_error_names_the_files_and_the_job() {
        let e = PolicyError::Budget {
            files: vec!["policies/a.rego".into(), "policies/b.rego".into()],
            doing: "evaluating the policies for stack web".into(),
            reason: "it ran past the time budget of 5 s and was stopped".into(),
        };
        assert_eq!(
            e.to_string(),
            "policies/a.rego, policies/b.rego: evaluating the policies for stack web \
             stopped: it ran past the time budget of 5 s and was stopped"
        );
    }

    #[test]
    fn jobs_run_here_without_a_worker() {
        let files = vec![RegoFile {
            path: "policies/a.rego".into(),
            text: "package a\n\ndeny contains \"no\" if input.stack == \"web\"\n".into(),
        }];
        let rules: Vec<super::super::results::ResultRule> = run(
            Job::Load {
                files: files.clone(),
            },
            EVALUATION,
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
        let values: Vec<serde_json::Value> = run(
            Job::Evaluate {
                files,
                query: "[data.a.deny]".into(),
                rules,
                stack: "web".into(),
                input: r#"{"stack": "web"}"#.into(),
            },
            EVALUATION,
        )
        .unwrap();
        assert_eq!(values, vec![serde_json::json!(["no"])]);
    }
}
