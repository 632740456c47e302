//! How symptom texts and the terms of cause files are compared: lowercase words, split at
//! anything that is not a letter, a digit or `_` (so `tcp_tw_recycle` stays one word and
//! `keep-alive` is `keep alive`), matched on word boundaries. A term in a script without
//! spaces between words (Chinese) is matched as a plain substring instead.

/// The lowercase words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How one term is found in a text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Needle {
    /// The term's words, joined and padded with single spaces (` load balancer `).
    Words(String),
    /// A lowercase substring (terms that are not ASCII).
    Substring(String),
}

impl Needle {
    /// The needle of a term; None when the term has no word at all.
    pub fn of(term: &str) -> Option<Self> {
        if term.is_ascii() {
            let w = words(term);
            (!w.is_empty()).then(|| Needle::Words(format!(" {} ", w.join(" "))))
        } else {
            let t = term.trim().to_lowercase();
            (!t.is_empty()).then_some(Needle::Substring(t))
        }
    }

    /// Whether the needle is in `text`.
    pub fn is_in(&self, text: &Haystack) -> bool {
        match self {
            Needle::Words(w) => text.words.contains(w.as_str()),
            Needle::Substring(s) => text.lower.contains(s.as_str()),
        }
    }
}

/// A symptom text prepared for searching.
#[derive(Debug, Clone)]
pub struct Haystack {
    /// The words, joined and padded with single spaces.
    pub words: String,
    /// The words one by one.
    pub list: Vec<String>,
    /// The whole text, lowercase.
    pub lower: String,
}

impl Haystack {
    pub fn new(text: &str) -> Self {
        let list = words(text);
        Self {
            words: format!(" {} ", list.join(" ")),
            list,
            lower: text.to_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_match_on_word_boundaries() {
        let h = Haystack::new("recv() failed (104: Connection reset by peer) while reading");
        assert!(Needle::of("Connection reset").unwrap().is_in(&h));
        assert!(Needle::of("reset by peer").unwrap().is_in(&h));
        assert!(
            !Needle::of("connection reset by peer while writing")
                .unwrap()
                .is_in(&h)
        );
        assert!(!Needle::of("eset").unwrap().is_in(&h));
        let h = Haystack::new("net.ipv4.tcp_tw_recycle = 1 behind keep-alive");
        assert!(Needle::of("tcp_tw_recycle").unwrap().is_in(&h));
        assert!(!Needle::of("tw_recycle").unwrap().is_in(&h));
        assert!(Needle::of("keep alive").unwrap().is_in(&h));
        assert_eq!(Needle::of(" -- "), None);
        let h = Haystack::new("移动网络下5分钟后连接被重置");
        assert!(Needle::of("移动网络").unwrap().is_in(&h));
    }
}
