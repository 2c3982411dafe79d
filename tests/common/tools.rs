//! The stock tools the interoperation tests run (ffmpeg, GStreamer): checks that FAIL,
//! never skip, when one is missing, and starting one.

use std::process::{Command, Stdio};

use super::{spawn_command, Proc};

/// `x` as a `String`: for argument lists that mix text, numbers and paths.
pub fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Whether `program ARG` runs and exits 0 (its output is discarded).
fn runs_ok(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails (never skips) unless `tool version_arg` runs: a tool scripts/test installs is
/// missing or broken.
pub fn require_tool(tool: &str, version_arg: &str) {
    assert!(
        runs_ok(tool, version_arg),
        "{tool} is missing or broken: these interop tests need it and scripts/test installs it \
         (apt-get install -y --no-install-recommends gstreamer1.0-tools gstreamer1.0-plugins-good \
         gstreamer1.0-plugins-base ffmpeg)"
    );
}

/// Fails unless `ffmpeg` runs.
pub fn require_ffmpeg() {
    require_tool("ffmpeg", "-version");
}

/// Fails unless `gst-launch-1.0` runs and has the elements the L16 interop tests use
/// (`gst-inspect-1.0` finds each).
pub fn require_gstreamer() {
    require_tool("gst-launch-1.0", "--version");
    for element in [
        "udpsrc",
        "udpsink",
        "rtpL16pay",
        "rtpL16depay",
        "rtpjitterbuffer",
        "wavparse",
        "wavenc",
    ] {
        assert!(
            runs_ok("gst-inspect-1.0", element),
            "GStreamer element {element} is missing: install gstreamer1.0-plugins-good and gstreamer1.0-plugins-base"
        );
    }
}

/// Starts the stock tool `program` with `args` (stdin from /dev/null, output collected);
/// `name` names it in failures.
pub fn spawn_tool(name: &str, program: &str, args: &[String]) -> Proc {
    let mut c = Command::new(program);
    c.args(args);
    spawn_command(name, c)
}
