//! The kernel release and which features it has.

use super::KernelVersion;

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
}
