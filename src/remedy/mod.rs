//! Fixes: render sysctl.d / shell / Ansible, sysctl profiles, and the
//! transactional apply, verify and rollback.

/// The rule parameters a profile sets (`audit --profile NAME|FILE`), `extends:` resolved.
pub fn profile_params(name_or_path: &str) -> anyhow::Result<Vec<(String, String)>> {
    let _ = name_or_path;
    anyhow::bail!("profiles are not implemented yet")
}
