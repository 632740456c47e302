//! Command lines printed for the user to run, each word shell-quoted (shlex), so that a path
//! with a space or a quote pastes as one word and nothing in it runs. Every layer that tells
//! the reader what to run builds the line here; the words are the caller's, and select the
//! same target as the run that prints them (`--netns`, `--profile`, `--persist`, the state
//! directory).

/// `words` as one command line for a POSIX shell.
pub fn command<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let words: Vec<&str> = words.into_iter().collect();
    // A word with a NUL byte cannot be passed to a program at all; no path or name here has one.
    shlex::try_join(words.iter().copied()).unwrap_or_else(|_| words.join(" "))
}

/// What keeps the values of network namespace `netns`, not the host's, across its restart:
/// not sysctl.d, which `sysctl --system` loads into the host's namespace at boot. A sentence.
pub fn namespace_persistence(netns: &str) -> String {
    format!(
        "A sysctl.d file is loaded into the host's network namespace at boot (`sysctl \
         --system`), not into namespace {netns}: keep its values where the namespace is made, \
         in the container runtime's sysctl settings (`podman run --sysctl KEY=VALUE`, `docker \
         run --sysctl KEY=VALUE`, Kubernetes `securityContext.sysctls`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the shell makes of the printed line is the words it was made of, whatever they hold.
    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(command(["rstaudit", "rollback"]), "rstaudit rollback");
        let words = [
            "printf",
            "%s\\n",
            "/tmp/a b/it's.json",
            "$(reboot)",
            "`id`",
            "x;y",
            "*",
            "a\"b'c",
        ];
        let line = command(words);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(got, words[2..], "{line}");
    }
}
