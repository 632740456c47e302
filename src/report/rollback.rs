//! What `rollback` prints: the diff of each file (several: under its namespace's name), the
//! keys changed since the apply, the files whose namespace is gone, and what was restored.

use crate::remedy::render;
use crate::remedy::rollback::{Planned, Restored};

/// The diff of every file, then the files left out because their namespace is gone.
pub fn diff_text(planned: &Planned) -> String {
    let mut out = String::new();
    for p in &planned.files {
        if planned.several {
            out.push_str(&format!(
                "== network namespace {} ==\n",
                p.record.netns.name
            ));
        }
        out.push_str(&render::diff_table(&p.plan.rows));
        for c in &p.changed {
            out.push_str(&format!(
                "note: {} was changed after the apply (it set {}, it is now {}); restoring {} anyway\n",
                c.key, c.applied, c.now, c.restoring
            ));
        }
    }
    for (file, why) in &planned.gone {
        out.push_str(&format!(
            "note: {why}; nothing to restore there ({} will be marked .gone)\n",
            file.display()
        ));
    }
    out
}

/// What one restored file says.
pub fn restored_text(r: &Restored) -> String {
    let mut msg = format!("Restored {} key(s) in namespace {}", r.keys, r.netns);
    if let Some((path, previous)) = &r.persist {
        msg.push_str(&if *previous {
            format!(" and the previous {path}")
        } else {
            format!(" and removed {path}")
        });
    }
    msg.push_str(&format!(
        ". Rollback file marked done: {}\n",
        r.done.display()
    ));
    if let Some(path) = &r.persist_left {
        msg.push_str(&format!(
            "persist file {path} left as it is (--skip-persist)\n"
        ));
    }
    msg
}
