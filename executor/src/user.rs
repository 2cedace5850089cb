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

/// Resolves `spec` (empty means root) as BuildKit does (its executor, then runc's user
/// lookup): `uid:gid` (both numbers) is exactly those ids with no supplementary groups;
/// otherwise the user is looked up in passwd (a number not there is that uid with gid 0, a
/// name not there an error); an explicit group sets the gid (a number not in the group file
/// is taken as it is) and gives no supplementary groups; without one, the supplementary
/// groups are those the group file lists the user's name in.
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
    let home = entry
        .as_ref()
        .map_or_else(|| "/".to_string(), |e| e.home.to_string());
    // Both numbers: no lookup decides anything but HOME.
    if let (Ok(uid), Some(Ok(gid))) = (user.parse::<u32>(), grp.map(str::parse::<u32>)) {
        return Ok(ResolvedUser {
            uid,
            gid,
            additional_gids: Vec::new(),
            home,
        });
    }
    let (uid, mut gid, name) = match (user.parse::<u32>(), &entry) {
        (_, Some(e)) => (e.uid, e.gid, Some(e.name)),
        (Ok(uid), None) => (uid, 0, None),
        (Err(_), None) => return Err(UserError::NoUser(user.to_string())),
    };
    let mut additional = Vec::new();
    match grp.filter(|g| !g.is_empty()) {
        Some(g) => {
            let found = group_entries(group).find(|(n, id, _)| match g.parse::<u32>() {
                Ok(want) => *id == want,
                Err(_) => *n == g,
            });
            gid = match (found, g.parse::<u32>()) {
                (Some((_, id, _)), _) => id,
                (None, Ok(n)) => n,
                (None, Err(_)) => return Err(UserError::NoGroup(g.to_string())),
            };
        }
        None => {
            if let Some(n) = name {
                for (_, id, members) in group_entries(group) {
                    if members.contains(&n) && !additional.contains(&id) {
                        additional.push(id);
                    }
                }
            }
        }
    }
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
        assert_eq!(r(""), Ok((0, 0, vec![])));
        assert_eq!(r("root"), Ok((0, 0, vec![])));
        assert_eq!(r("app"), Ok((1000, 1000, vec![29, 44])));
        assert_eq!(r("1000"), Ok((1000, 1000, vec![29, 44])));
        assert_eq!(r("app:audio"), Ok((1000, 29, vec![])));
        assert_eq!(r("app:44"), Ok((1000, 44, vec![])));
        assert_eq!(r("app:5"), Ok((1000, 5, vec![])));
        assert_eq!(r("4242"), Ok((4242, 0, vec![])));
        assert_eq!(r("4242:4343"), Ok((4242, 4343, vec![])));
        // Numbers only: exactly those ids, whatever the files say.
        assert_eq!(r("1000:1000"), Ok((1000, 1000, vec![])));
        assert_eq!(r("0:0"), Ok((0, 0, vec![])));
        assert_eq!(resolve("1000:7", PASSWD, GROUP).unwrap().home, "/home/app");
        assert_eq!(resolve("4242:1", PASSWD, GROUP).unwrap().home, "/");
        assert_eq!(r("ghost"), Err(UserError::NoUser("ghost".into())));
        assert_eq!(r("app:ghosts"), Err(UserError::NoGroup("ghosts".into())));
        assert_eq!(resolve("app", PASSWD, GROUP).unwrap().home, "/home/app");
    }
}
