//! Progress bars for long commands: shown on a terminal, silent when piped
//! or with --json.

use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar (with a known length) or a spinner counting entries, drawn on
/// stderr only when it is a terminal and output is for people.
pub fn bar(len: Option<u64>, message: &'static str, json: bool) -> ProgressBar {
    if json || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = match len {
        Some(_) => "{msg} [{bar:30}] {pos}/{len} entries ({per_sec})",
        None => "{spinner} {msg}: {pos} entries ({per_sec})",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A spinner for work whose size is unknown and not counted here (verify,
/// purge), drawn under the same conditions as [`bar`].
pub fn spinner(message: &'static str, json: bool) -> ProgressBar {
    if json || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}… ({elapsed})") {
        spinner.set_style(style);
    }
    spinner.set_draw_target(ProgressDrawTarget::stderr());
    spinner.set_message(message);
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}

/// Counts the lines written through it on a progress bar.
pub struct CountingWriter<'a, W: Write> {
    inner: W,
    bar: &'a ProgressBar,
}

impl<'a, W: Write> CountingWriter<'a, W> {
    pub fn new(inner: W, bar: &'a ProgressBar) -> Self {
        Self { inner, bar }
    }
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
        self.bar.inc(lines as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
