//! Resolving `USER` (`name`, `uid`, `name:group`, `uid:gid`) against an image's `/etc/passwd`
//! and `/etc/group`, as Docker and BuildKit do.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership; none with an explicit group).
    pub additional_gids: Vec<u32>,
    /// The home directory, for `HOME` when the image does not set it.
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members)
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `spec` (empty means root). A numeric uid not in passwd gets gid 0; names must exist.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = passwd_entries(passwd).find(|e| match user.parse::<u32>() {
        Ok(uid) => e.uid == uid,
        Err(_) => e.name == user,
    });
    let (uid, mut gid, home, name) = match (user.parse::<u32>(), &entry) {
        (_, Some(e)) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
        (Ok(uid), None) => (uid, 0, "/".to_string(), None),
        (Err(_), None) => return Err(UserError::NoUser(user.to_string())),
    };
    let mut additional = Vec::new();
    match grp {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => group_entries(group)
                    .find(|(n, _, _)| *n == g)
                    .map(|(_, id, _)| id)
                    .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
            };
        }
        _ => {
            if let Some(n) = &name {
                for (_, id, members) in group_entries(group) {
                    if members.contains(&n.as_str()) && id != gid && !additional.contains(&id) {
                        additional.push(id);
                    }
                }
            }
        }
    }
    // As Docker does, the primary group is also a supplementary group.
    additional.retain(|g| *g != gid);
    additional.insert(0, gid);
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\napp:x:1000:\nnogroup:x:65534:\naudio:x:29:app,other\nvideo:x:44:app\n";

    fn r(s: &str) -> Result<(u32, u32, Vec<u32>), UserError> {
        resolve(s, PASSWD, GROUP).map(|u| (u.uid, u.gid, u.additional_gids))
    }

    #[test]
    fn forms() {
        assert_eq!(r(""), Ok((0, 0, vec![0])));
        assert_eq!(r("app"), Ok((1000, 1000, vec![1000, 29, 44])));
        assert_eq!(r("1000"), Ok((1000, 1000, vec![1000, 29, 44])));
        assert_eq!(r("app:audio"), Ok((1000, 29, vec![29])));
        assert_eq!(r("app:5"), Ok((1000, 5, vec![5])));
        assert_eq!(r("4242"), Ok((4242, 0, vec![0])));
        assert_eq!(r("4242:4343"), Ok((4242, 4343, vec![4343])));
        assert_eq!(r("ghost"), Err(UserError::NoUser("ghost".into())));
        assert_eq!(r("app:ghosts"), Err(UserError::NoGroup("ghosts".into())));
        assert_eq!(resolve("app", PASSWD, GROUP).unwrap().home, "/home/app");
    }
}
