//! Fixes: render sysctl.d / shell / Ansible, sysctl profiles, and the
//! transactional apply, verify and rollback.
