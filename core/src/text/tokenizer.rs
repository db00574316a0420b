//! Prompt tokenizers for T5 (`tokenizer.json`, SentencePiece-Unigram) and CLIP (byte-level BPE from
//! `vocab.json` + `merges.txt`, or a `tokenizer.json`), padded and truncated the way FLUX's
//! reference pipeline does: T5 `ids + </s>` padded with `<pad>`, CLIP `<|startoftext|> ids
//! <|endoftext|>` padded with `<|endoftext|>`.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormSeq, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

/// CLIP's word-splitting pattern (from the CLIP tokenizer).
const CLIP_SPLIT: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Special tokens that frame a sequence.
#[derive(Debug, Clone, Copy)]
struct Specials {
    bos: Option<u32>,
    eos: u32,
    pad: u32,
}

/// A tokenizer producing fixed-length id sequences for one text encoder.
pub struct PromptTokenizer {
    inner: Tokenizer,
    specials: Specials,
    source: PathBuf,
}

fn tok_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        path: Some(path.to_path_buf()),
        reason: reason.to_string(),
    }
}

fn require(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(tok_err(path, "file not found"))
    }
}

fn token_id(t: &Tokenizer, path: &Path, token: &str) -> Result<u32> {
    t.token_to_id(token)
        .ok_or_else(|| tok_err(path, format!("the vocabulary has no '{token}' token")))
}

impl PromptTokenizer {
    /// Loads a T5 `tokenizer.json`.
    pub fn t5(path: &Path) -> Result<Self> {
        require(path)?;
        let inner = tokenizer_json(path)?;
        let specials = Specials {
            bos: None,
            eos: token_id(&inner, path, "</s>")?,
            pad: token_id(&inner, path, "<pad>")?,
        };
        Ok(Self {
            inner,
            specials,
            source: path.to_path_buf(),
        })
    }

    /// Loads a CLIP tokenizer: a `tokenizer.json`, or a folder / `vocab.json` path with `merges.txt` beside it.
    pub fn clip(path: &Path) -> Result<Self> {
        let inner = if path.is_file() && path.file_name().is_some_and(|n| n == "tokenizer.json") {
            tokenizer_json(path)?
        } else {
            let dir = if path.is_dir() {
                path
            } else {
                path.parent().unwrap_or(Path::new("."))
            };
            let json = dir.join("tokenizer.json");
            let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
            if !vocab.is_file() && json.is_file() {
                tokenizer_json(&json)?
            } else {
                require(&vocab)?;
                require(&merges)?;
                clip_bpe(&vocab, &merges)?
            }
        };
        let eos = token_id(&inner, path, "<|endoftext|>")?;
        let specials = Specials {
            bos: Some(token_id(&inner, path, "<|startoftext|>")?),
            eos,
            pad: eos,
        };
        Ok(Self {
            inner,
            specials,
            source: path.to_path_buf(),
        })
    }

    /// Where the tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Token ids of `text`, framed with the special tokens, truncated and padded to `len`.
    pub fn encode(&self, text: &str, len: usize) -> Result<Vec<u32>> {
        let framing = 1 + usize::from(self.specials.bos.is_some());
        if len < framing {
            return Err(Error::invalid(format!(
                "a token sequence of {len} cannot hold the special tokens"
            )));
        }
        // The tokenizers crate indexes its post-processor's template unchecked: a hostile file
        // makes `encode` panic, which becomes this file's error.
        let enc = crate_call(&self.source, || self.inner.encode(text, false))?
            .map_err(|e| tok_err(&self.source, e))?;
        let mut ids = Vec::with_capacity(len);
        ids.extend(self.specials.bos);
        ids.extend(enc.get_ids().iter().take(len - framing));
        ids.push(self.specials.eos);
        ids.resize(len, self.specials.pad);
        Ok(ids)
    }
}

/// A `tokenizer.json`. Its JSON syntax is checked first; the tokenizers crate still panics on
/// some well-formed but hostile files (its decoder section unwraps a number out of range), which
/// becomes this file's error.
fn tokenizer_json(path: &Path) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(path).map_err(|e| tok_err(path, e))?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| tok_err(path, format!("not JSON: {e}")))?;
    crate_call(path, || text.parse::<Tokenizer>())?.map_err(|e| tok_err(path, e))
}

/// Runs a call into the tokenizers crate, whose panics on hostile files become an error naming
/// `path`.
fn crate_call<T>(path: &Path, call: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|_| {
        tok_err(
            path,
            "the tokenizers crate cannot handle this file (it panicked)",
        )
    })
}

/// A BPE vocabulary: a JSON object of pieces and their ids.
fn read_vocab(path: &Path) -> Result<Vocab> {
    let text = std::fs::read(path).map_err(|e| tok_err(path, e))?;
    let pieces: std::collections::HashMap<String, u32> = serde_json::from_slice(&text)
        .map_err(|e| tok_err(path, format!("not a vocabulary: {e}")))?;
    Ok(pieces.into_iter().collect())
}

/// BPE merges: one pair of pieces per line, after an optional `#version` line.
fn read_merges(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| tok_err(path, e))?;
    let lines = text.lines().enumerate();
    lines
        .filter(|(i, l)| !(l.is_empty() || *i == 0 && l.starts_with("#version")))
        .map(|(i, line)| match line.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                Ok((a.to_string(), b.to_string()))
            }
            _ => Err(tok_err(
                path,
                format!("line {}: a merge is two pieces separated by a space", i + 1),
            )),
        })
        .collect()
}

/// Builds CLIP's byte-level BPE tokenizer from its vocabulary and merges. The real vocabulary
/// covers every byte; pieces missing from a smaller one are dropped rather than mapped to
/// `<|endoftext|>`, which would move the pooled position.
fn clip_bpe(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
    let bpe = BPE::builder()
        .vocab_and_merges(read_vocab(vocab)?, read_merges(merges)?)
        .end_of_word_suffix("</w>".into())
        .build()
        // The vocabulary parsed: what fails now is a merge of pieces it does not have.
        .map_err(|e| tok_err(merges, e))?;
    let mut t = Tokenizer::new(bpe);
    let spaces = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
        " ",
    )
    .map_err(|e| tok_err(vocab, e))?;
    t.with_normalizer(Some(NormSeq::new(vec![
        NFC.into(),
        spaces.into(),
        Lowercase.into(),
    ])));
    let split = Split::new(
        SplitPattern::Regex(CLIP_SPLIT.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| tok_err(vocab, e))?;
    t.with_pre_tokenizer(Some(PreSeq::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])));
    t.with_decoder(Some(ByteLevel::default()));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broken CLIP file is reported under its own name.
    #[test]
    fn clip_errors_name_the_broken_file() {
        let dir = std::env::temp_dir().join(format!("flux-clip-tok-{}", std::process::id()));
        crate::tiny::write_clip_tokenizer(&dir).unwrap();
        PromptTokenizer::clip(&dir).unwrap();
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        let good_merges = std::fs::read_to_string(&merges).unwrap();
        let cases = [
            (
                &merges,
                "#version: 0.2\nth e</w>\nnot-a-pair\n",
                "merges.txt",
                "line 3",
            ),
            (&merges, "zz qq\n", "merges.txt", "zz"),
            (&vocab, "{\"a\": ", "vocab.json", "not a vocabulary"),
        ];
        for (file, text, name, detail) in cases {
            std::fs::write(&merges, &good_merges).unwrap();
            let good = std::fs::read(file).unwrap();
            std::fs::write(file, text).unwrap();
            let e = PromptTokenizer::clip(&dir).err().unwrap().to_string();
            std::fs::write(file, good).unwrap();
            assert!(e.contains(name) && e.contains(detail), "{name}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
