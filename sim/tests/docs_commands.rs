//! Every command in the docs works, so none can go stale. The `sh` blocks of `README.md` and
//! `docs/*.md` come in three kinds, by the fence's tag:
//! - `sh`: run as they are, in bash with `set -euo pipefail`, against a running demo site (after
//!   its `demo.env`, as a reader would), each failing curl failing the block;
//! - `sh no-run`: commands for real machines (root, `/etc`, a SQL Server, the test run itself):
//!   every `outpost-*` and `cargo run … outpost-sim` command in them must parse (its subcommand and
//!   flags, checked with `--help` appended), and every `bash FILE` must be a bash script that parses;
//! - `sh install-test`: the install steps of `docs/operations.md`, each of which
//!   `deploy/debian/install-test` runs in a fresh Debian root (checked here line by line).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::path::{Path, PathBuf};
use std::process::Command;

use outpost_harness::harness::DemoProcess;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_outpost-sim"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Debug, PartialEq)]
enum Kind {
    Run,
    NoRun,
    InstallTest,
}

#[derive(Debug)]
struct Block {
    /// `docs/api.md:23`
    at: String,
    kind: Kind,
    text: String,
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The body of a block that is not shell, which is not collected.
const SKIP: &str = "\u{0}";

fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for file in doc_files() {
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let mut open: Option<(usize, Kind, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match &mut open {
                None => {
                    let Some(info) = line.strip_prefix("```") else {
                        continue;
                    };
                    let mut words = info.split_whitespace();
                    if !matches!(words.next(), Some("sh" | "bash" | "shell" | "console")) {
                        // Another language, or none: skip to its closing fence.
                        open = Some((n + 1, Kind::NoRun, String::from(SKIP)));
                        continue;
                    }
                    let kind = match words.next() {
                        None => Kind::Run,
                        Some("no-run") => Kind::NoRun,
                        Some("install-test") => Kind::InstallTest,
                        Some(other) => panic!("{name}:{}: unknown sh block tag {other}", n + 1),
                    };
                    open = Some((n + 1, kind, String::new()));
                }
                Some((_, _, body)) => {
                    if line.starts_with("```") {
                        let (start, kind, body) = open.take().unwrap();
                        if body != SKIP {
                            blocks.push(Block {
                                at: format!("{name}:{start}"),
                                kind,
                                text: body,
                            });
                        }
                        continue;
                    }
                    if body != SKIP {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
        }
    }
    blocks
}

/// The block's commands: continuation lines joined, comments and blank lines dropped.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let command = match current.find("  #") {
            Some(at) => current[..at].trim().to_owned(),
            None => current.trim().to_owned(),
        };
        if !command.is_empty() {
            out.push(command);
        }
        current.clear();
    }
    out
}

/// Checks what a `no-run` command can be checked for here; `Err` says what is wrong.
fn check_without_running(command: &str) -> Result<(), String> {
    for segment in command.split(['|', '>']) {
        let words: Vec<&str> = segment.split_whitespace().collect();
        let args: Vec<&str> = match words.as_slice() {
            ["outpost-hub", rest @ ..] => [&["hub"][..], rest].concat(),
            ["outpost-edge", rest @ ..] => [&["edge"][..], rest].concat(),
            ["outpost-sim", rest @ ..] => rest.to_vec(),
            ["cargo", "run", rest @ ..] => {
                let Some(at) = rest.iter().position(|w| *w == "--") else {
                    return Err(format!("`{segment}`: cargo run without `--`"));
                };
                if !rest[..at].windows(2).any(|w| w == ["--bin", "outpost-sim"]) {
                    return Err(format!("`{segment}`: not the outpost-sim binary"));
                }
                rest[at + 1..].to_vec()
            }
            ["bash", file, ..] => {
                let path = root().join(file);
                let ok = Command::new("bash")
                    .arg("-n")
                    .arg(&path)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(format!(
                        "`{segment}`: {} is not a bash script that parses",
                        path.display()
                    ));
                }
                continue;
            }
            _ => continue,
        };
        let out = Command::new(exe())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "`{}`: {}",
                segment.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[test]
fn the_readme_starts_with_the_two_commands() {
    let first = blocks().into_iter().next().unwrap();
    assert!(first.at.starts_with("README.md:"), "{first:?}");
    assert_eq!(
        commands(&first.text),
        [
            "cargo run --release --bin outpost-sim -- demo",
            "bash .ci/run"
        ]
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 150,
        "the README is what a newcomer needs on a screen or two; the rest is in docs/"
    );
}

#[test]
fn every_no_run_command_in_the_docs_parses() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for block in blocks().iter().filter(|b| b.kind == Kind::NoRun) {
        for command in commands(&block.text) {
            checked += 1;
            if let Err(problem) = check_without_running(&command) {
                problems.push(format!("{}: {problem}", block.at));
            }
        }
    }
    assert!(checked >= 10, "{checked} commands");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_install_step_in_the_docs_is_run_by_the_package_install_test() {
    let script = std::fs::read_to_string(root().join("deploy/debian/install-test")).unwrap();
    let run: Vec<String> = script
        .lines()
        .map(|l| l.trim().trim_start_matches("in_root ").to_owned())
        .collect();
    let steps: Vec<(String, String)> = blocks()
        .into_iter()
        .filter(|b| b.kind == Kind::InstallTest)
        .flat_map(|b| {
            commands(&b.text)
                .into_iter()
                .map(move |c| (b.at.clone(), c))
        })
        .collect();
    assert!(
        steps.len() >= 4,
        "the install steps are in the docs: {steps:?}"
    );
    for (at, step) in steps {
        assert!(
            run.contains(&step),
            "{at}: `{step}` is not what deploy/debian/install-test runs"
        );
    }
}

#[test]
fn a_no_run_check_catches_an_unknown_subcommand_or_flag() {
    assert!(check_without_running("outpost-hub pki list --dir /x").is_ok());
    assert!(check_without_running("outpost-hub pki lsit --dir /x").is_err());
    assert!(check_without_running("outpost-edge run --config /x --log-formt json").is_err());
    assert!(check_without_running("bash .ci/nothing-here").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sh_block_in_the_docs_runs_against_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = DemoProcess::start(exe(), &tmp.path().join("site"), &["--duration", "300"])
        .await
        .unwrap();
    let env_file = demo.env_file().expect("the demo prints its demo.env line");

    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let preamble = format!(
        "set -euo pipefail\n\
         . {env}\n\
         curl() {{ command curl --fail --silent --show-error \"$@\" || {{ rc=$?; \
         [ $rc -eq 28 ] && [[ \" $* \" == *\" -N \"* ]] && return 0; return $rc; }}; }}\n\
         outpost-hub() {{ {sim} hub \"$@\"; }}\n\
         outpost-edge() {{ {sim} edge \"$@\"; }}\n\
         outpost-sim() {{ {sim} \"$@\"; }}\n",
        env = env_file.display(),
        sim = exe().display(),
    );
    let mut problems = Vec::new();
    let mut ran = 0;
    for block in blocks().iter().filter(|b| b.kind == Kind::Run) {
        ran += commands(&block.text).len();
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{preamble}{}", block.text))
            .current_dir(&work)
            .output()
            .await
            .unwrap();
        if !out.status.success() {
            problems.push(format!(
                "{} ({}):\n{}{}",
                block.at,
                out.status,
                String::from_utf8_lossy(&out.stdout)
                    .chars()
                    .take(2000)
                    .collect::<String>(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(ran >= 20, "{ran} commands ran");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The screenshot the docs fetch is the TV's screen.
    let shot = std::fs::read(work.join("shot.png")).unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "shot.png is a PNG");
    println!("{ran} commands in the docs ran against the demo");
    demo.child.start_kill().unwrap();
}
