//! A bounded least-recently-used cache of prompt embeddings, so a new seed on the same prompt
//! skips text encoding.

use std::collections::VecDeque;

use crate::text::PromptEmbedding;

/// Key: the prompt and the T5 length it was encoded with.
type Key = (String, usize);

pub(crate) struct EmbeddingCache {
    capacity: usize,
    /// Most recently used last.
    entries: VecDeque<(Key, PromptEmbedding)>,
}

impl EmbeddingCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: VecDeque::with_capacity(capacity),
        }
    }

    pub fn contains(&self, prompt: &str, len: usize) -> bool {
        self.entries
            .iter()
            .any(|((p, l), _)| p == prompt && *l == len)
    }

    /// The embedding, marked as most recently used.
    pub fn get(&mut self, prompt: &str, len: usize) -> Option<PromptEmbedding> {
        let i = self
            .entries
            .iter()
            .position(|((p, l), _)| p == prompt && *l == len)?;
        let entry = self.entries.remove(i)?;
        let emb = entry.1.clone();
        self.entries.push_back(entry);
        Some(emb)
    }

    pub fn put(&mut self, prompt: &str, len: usize, emb: PromptEmbedding) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(((prompt.to_string(), len), emb));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
