//! Finding a node's line and column in YAML text, which serde_yaml does not
//! keep: walk the document along the node's path and read the position off
//! the error raised on arrival.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

use super::diagnostic::Location;

/// One step of a path into the YAML document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    /// A mapping key.
    Key(&'static str),
    /// A sequence index.
    Index(usize),
}

/// A path from the document root to a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct NodePath(pub(super) Vec<Segment>);

impl NodePath {
    /// This path extended by one step.
    pub(super) fn with(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        Self(segments)
    }

    /// `processes[1].capabilities[0].kind`, the form serde_yaml uses.
    pub(super) fn render(&self) -> String {
        let mut text = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Key(key) if text.is_empty() => text.push_str(key),
                Segment::Key(key) => {
                    text.push('.');
                    text.push_str(key);
                }
                Segment::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        text
    }
}

/// Shorthand for a key step of a node path.
pub(super) fn key(name: &'static str) -> Segment {
    Segment::Key(name)
}

/// The node path made of `segments`.
pub(super) fn path(segments: &[Segment]) -> NodePath {
    NodePath(segments.to_vec())
}

/// The location of the node at `path` in the YAML `text`, or of the nearest
/// existing ancestor when the node itself is absent (a missing key).
///
/// serde_yaml keeps no spans, but it stamps every error raised while a node
/// is being deserialized with that node's position. So this walks the
/// document with a visitor that follows `path` and raises an error on
/// arrival, then reads the position off the error.
pub(super) fn locate(text: &str, path: &NodePath) -> Option<Location> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let error = Locator { path: &path.0 }.deserialize(deserializer).err()?;
    error.location().map(|location| Location {
        line: location.line(),
        column: location.column(),
    })
}

/// A seed that descends along `path` and fails at its end.
pub(super) struct Locator<'path> {
    path: &'path [Segment],
}

/// The error the locator raises; only its position matters.
pub(super) const LOCATOR_STOP: &str = "locator stop";

impl<'de> DeserializeSeed<'de> for Locator<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locator<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(LOCATOR_STOP));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(*wanted) {
                return map.next_value_seed(Locator { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(LOCATOR_STOP))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(LOCATOR_STOP));
        };
        for _ in 0..*wanted {
            if sequence.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(LOCATOR_STOP));
            }
        }
        match sequence.next_element_seed(Locator { path: rest })? {
            Some(()) | None => Err(de::Error::custom(LOCATOR_STOP)),
        }
    }

    // Every scalar is a leaf: stop here whatever remains of the path.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_block_and_flow_nodes() {
        let text = "init: a\nprocesses:\n  - name: a\n    capabilities:\n      - { kind: console }\n      - { kind: timer, name: clock }\n";
        let at = |segments: Vec<Segment>| locate(text, &NodePath(segments));
        assert_eq!(at(vec![key("init")]), Some(Location { line: 1, column: 7 }));
        assert_eq!(
            at(vec![key("processes"), Segment::Index(0), key("name")]),
            Some(Location {
                line: 3,
                column: 11
            })
        );
        assert_eq!(
            at(vec![
                key("processes"),
                Segment::Index(0),
                key("capabilities"),
                Segment::Index(1),
                key("name"),
            ]),
            Some(Location {
                line: 6,
                column: 30
            })
        );
        // A missing key points at the mapping that lacks it.
        assert_eq!(
            at(vec![
                key("processes"),
                Segment::Index(0),
                key("capabilities"),
                Segment::Index(0),
                key("object"),
            ])
            .map(|location| location.line),
            Some(5)
        );
    }

    #[test]
    fn node_paths_render_like_serde_yaml() {
        let path = NodePath(vec![
            key("processes"),
            Segment::Index(2),
            key("capabilities"),
            Segment::Index(0),
            key("kind"),
        ]);
        assert_eq!(path.render(), "processes[2].capabilities[0].kind");
    }
}
