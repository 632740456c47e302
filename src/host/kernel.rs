//! The kernel release and which features it has.

use super::{Kernel, KernelVersion};

/// The running kernel's release (`uname -r`).
pub fn running_release() -> Result<String, nix::errno::Errno> {
    Ok(nix::sys::utsname::uname()?
        .release()
        .to_string_lossy()
        .into_owned())
}

/// The running kernel: its release and version (from /proc/version where the release does not
/// show it).
pub fn running() -> Kernel {
    let release = running_release().unwrap_or_default();
    let proc_version = std::fs::File::open("/proc/version")
        .and_then(|f| crate::input::read_small(f, 1024))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    from_texts(&release, proc_version.as_deref())
}

/// The running kernel from its release (`uname -r`) and, when there is one, the text of
/// /proc/version. Debian's release names the ABI, not the patch level (`6.1.0-57-cloud-amd64`
/// is 6.1.192); its /proc/version ends with the package version (`... #1 SMP PREEMPT_DYNAMIC
/// Debian 6.1.192-1 (2025-08-20)`), and that is the version kernel ranges are checked against.
pub fn from_texts(release: &str, proc_version: Option<&str>) -> Kernel {
    let release = release.trim().to_string();
    let from_release = parse_release(&release);
    let version = match (proc_version.and_then(distro_version), from_release) {
        // Only the patch level is taken from the distribution: its major.minor must agree.
        (Some(real), Some(r)) if (real.major, real.minor) == (r.major, r.minor) => Some(real),
        (Some(real), None) => Some(real),
        (_, r) => r,
    };
    Kernel { release, version }
}

/// The version of the distribution's kernel package named after the build number in
/// /proc/version (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 (...)`). The compiler's
/// version earlier in the line (`gcc-12 (Debian 12.2.0-14)`) is not taken.
pub fn distro_version(proc_version: &str) -> Option<KernelVersion> {
    let (_, build) = proc_version.split_once(" #")?;
    let mut words = build.split_whitespace();
    words.find(|w| *w == "Debian")?;
    let version = words.next()?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| parse_release(version))
        .flatten()
}

impl Kernel {
    /// The release, and the real version when the release does not show it:
    /// `6.1.0-57-cloud-amd64 (6.1.192)`.
    pub fn describe(&self) -> String {
        match self.version {
            Some(v) if parse_release(&self.release) != Some(v) => {
                format!("{} ({}.{}.{})", self.release, v.major, v.minor, v.patch)
            }
            _ => self.release.clone(),
        }
    }
}

/// Parse a release such as `6.18.44-fc-v445` or `4.9.0` into a version.
pub fn parse_release(release: &str) -> Option<KernelVersion> {
    let mut nums = release.trim().split(['.', '-', '+', '_']).map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = nums.next()??;
    let minor = nums.next()??;
    let patch = nums.next().flatten().unwrap_or(0);
    Some(KernelVersion {
        major,
        minor,
        patch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        let v = |a, b, c| {
            Some(KernelVersion {
                major: a,
                minor: b,
                patch: c,
            })
        };
        assert_eq!(parse_release("6.18.44-fc-v445"), v(6, 18, 44));
        assert_eq!(parse_release("4.9.0-13-amd64\n"), v(4, 9, 0));
        assert_eq!(parse_release("5.15"), v(5, 15, 0));
        assert_eq!(parse_release("6.1.0-rc3"), v(6, 1, 0));
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(parse_release(""), None);
    }

    const DEBIAN_6_1: &str = "Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) \
        (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) \
        #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 (2025-10-20)\n";

    #[test]
    fn debian_release_gets_its_patch_level_from_proc_version() {
        let k = from_texts("6.1.0-57-cloud-amd64\n", Some(DEBIAN_6_1));
        assert_eq!(k.release, "6.1.0-57-cloud-amd64");
        assert_eq!(
            k.version,
            Some(KernelVersion {
                major: 6,
                minor: 1,
                patch: 192
            })
        );
        assert_eq!(k.describe(), "6.1.0-57-cloud-amd64 (6.1.192)");
        // The compiler's "Debian 12.2.0-14" before the build number is not the kernel's.
        assert_eq!(
            distro_version("Linux version 6.1.0 (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP"),
            None
        );
        let backports = "Linux version 6.12.117+deb12-cloud-amd64 (debian-kernel@lists.debian.org) \
            (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC \
            Debian 6.12.117-1~deb12u1 (2025-11-01)";
        let k = from_texts("6.12.117+deb12-cloud-amd64", Some(backports));
        assert_eq!(k.version.map(|v| v.patch), Some(117));
        assert_eq!(k.describe(), "6.12.117+deb12-cloud-amd64");
    }

    #[test]
    fn other_kernels_keep_the_release_version() {
        let own = "Linux version 6.18.44-fc-v657 (builder@sandboxing) (gcc (GCC) 15.3.0) #1 SMP PREEMPT_DYNAMIC @0";
        let k = from_texts("6.18.44-fc-v657", Some(own));
        assert_eq!(k.version.map(|v| (v.minor, v.patch)), Some((18, 44)));
        assert_eq!(k.describe(), "6.18.44-fc-v657");
        assert_eq!(
            from_texts("6.1.0-57-cloud-amd64", None)
                .version
                .map(|v| v.patch),
            Some(0)
        );
        // A distribution version of another series is not trusted over the release.
        let odd = from_texts(
            "6.1.0-57-amd64",
            Some("Linux version x #1 SMP Debian 5.10.1-1"),
        );
        assert_eq!(odd.version.map(|v| (v.minor, v.patch)), Some((1, 0)));
        assert_eq!(from_texts("", None).describe(), "");
    }
}
