//! Static bearer tokens from a `--token-auth-file`: CSV lines `token,user,uid,"group1,group2"`,
//! as upstream's `tokenfile` authenticator reads them (at least three columns; the group column
//! is optional; a later line with the same token wins).

use std::collections::HashMap;

use crate::UserInfo;

/// Why a token file was refused (the server does not start with it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("token file line {line}: {message}")]
pub struct TokenFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The tokens of a file: token → the user it authenticates (without `system:authenticated`,
/// which the caller adds).
#[derive(Clone, Debug, Default)]
pub struct StaticTokens {
    tokens: HashMap<String, UserInfo>,
}

impl StaticTokens {
    /// Parses the text of a token file.
    pub fn parse(text: &str) -> Result<Self, TokenFileError> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| TokenFileError {
                line: line_no,
                message,
            };
            let record = split_csv(line).map_err(err)?;
            if record.len() < 3 {
                return Err(err(format!(
                    "must have at least 3 columns (token, user name, user uid), found {}",
                    record.len()
                )));
            }
            let token = record[0].clone();
            if token.is_empty() {
                return Err(err("the token is empty".into()));
            }
            let groups = record
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                groups,
                extra: Default::default(),
            };
            tokens.insert(token, user);
        }
        Ok(Self { tokens })
    }

    /// The user a token authenticates, if it is one of the file's.
    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Splits one CSV record: fields separated by commas, optionally in double quotes (`""` is a
/// quote inside them), leading spaces of a field trimmed as Go's `TrimLeadingSpace`.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    loop {
        while chars.peek() == Some(&' ') || chars.peek() == Some(&'\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a bare quote in an unquoted field".into()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_format() {
        let text = "t1,alice,1001,\"dev,ops\"\n\
                    t2,bob,1002\n\
                    \n\
                    t3, carol ,1003,admins\n\
                    t1,alice2,1004\n";
        let tokens = StaticTokens::parse(text).expect("parse");
        let cases = [
            ("t1", Some(("alice2", "1004", vec![]))),
            ("t2", Some(("bob", "1002", vec![]))),
            ("t3", Some(("carol ", "1003", vec!["admins"]))),
            ("t4", None),
        ];
        for (token, want) in cases {
            let got = tokens
                .lookup(token)
                .map(|u| (u.name.as_str(), u.uid.as_str(), u.groups.clone()));
            let want =
                want.map(|(n, u, g)| (n, u, g.into_iter().map(String::from).collect::<Vec<_>>()));
            assert_eq!(got, want, "{token}");
        }
        assert_eq!(tokens.len(), 3);
    }

    #[test]
    fn quoted_groups_keep_commas() {
        let tokens = StaticTokens::parse("tok,u,1,\"a, b,c\"").expect("parse");
        let u = tokens.lookup("tok").expect("user");
        assert_eq!(u.groups, vec!["a", "b", "c"]);
    }

    #[test]
    fn refuses_bad_lines() {
        let cases = [
            ("tok,user", 1, "at least 3 columns"),
            ("ok,u,1\n,user,1", 2, "empty"),
            ("tok,u,\"1", 1, "unterminated"),
            ("tok,u,\"1\"x", 1, "after a quoted field"),
            ("to\"k,u,1", 1, "bare quote"),
        ];
        for (text, line, want) in cases {
            let err = StaticTokens::parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text}");
            assert!(err.message.contains(want), "{text}: {}", err.message);
        }
    }
}
