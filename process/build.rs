//! Names the commit this is built from for `outpost_build_info{commit}`: `OUTPOST_BUILD_COMMIT`
//! if the build sets it (a package built from a tarball), else `git rev-parse`, else `unknown`.

fn main() {
    println!("cargo:rerun-if-env-changed=OUTPOST_BUILD_COMMIT");
    // The checkout's HEAD and the branch it points at: a new commit rebuilds the label.
    println!("cargo:rerun-if-changed=../.git/HEAD");
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD")
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=../.git/{branch}");
    }
    let commit = std::env::var("OUTPOST_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=OUTPOST_BUILD_COMMIT={commit}");
}
