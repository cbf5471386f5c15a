//! Cards for the TV wall and the TV page (the card editor of the panel this replaces): per TV or
//! per tag, cards in order, each with fields bound to the TV's telemetry and buttons bound to
//! commands.
//!
//! Invariants: a saved layout only names bindings from [`BINDINGS`] and buttons whose operation
//! and arguments parse as a TV command of the one vocabulary (so a button can always be pressed);
//! a layout is stored whole (tree [`TREE`]), replacing the previous one, with who saved it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use outpost_command::{DeviceCommand, DeviceKind};
use outpost_config::Role;
use outpost_domain::calendar::rfc3339_utc;
use serde::{Deserialize, Serialize};

use crate::api::{ApiContext, ApiError, ErrorBody, authorize, bad_request};

/// The tree of layouts: scope → [`StoredLayout`] (JSON).
pub const TREE: &str = "console/cards";

/// What a field may show: a TV's state as `GET /api/v1/devices` gives it.
pub const BINDINGS: [&str; 10] = [
    "tv.up",
    "tv.screen_on",
    "tv.volume",
    "tv.input",
    "tv.app",
    "tv.ethernet",
    "tv.last_seen",
    "tv.healing.step",
    "tv.last_screenshot.at",
    "status",
];

const MAX_CARDS: usize = 50;
const MAX_ITEMS: usize = 20;
const MAX_LABEL: usize = 64;

/// A field: a label and what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardField {
    pub label: String,
    /// One of `tv.up`, `tv.screen_on`, `tv.volume`, `tv.input`, `tv.app`, `tv.ethernet`,
    /// `tv.last_seen`, `tv.healing.step`, `tv.last_screenshot.at`, `status`.
    pub binding: String,
}

/// A button: a label and the TV command it sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardButton {
    pub label: String,
    pub op: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
}

/// A card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub title: String,
    /// Columns it spans on the page: 1 or 2.
    #[serde(default = "one")]
    pub width: u8,
    #[serde(default)]
    pub fields: Vec<CardField>,
    #[serde(default)]
    pub buttons: Vec<CardButton>,
}

fn one() -> u8 {
    1
}

/// The cards of one scope, in order (`PUT /api/v1/cards/{scope}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardLayout {
    pub cards: Vec<Card>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredLayout {
    cards: Vec<Card>,
    by: String,
    saved_us: i64,
}

/// A scope's cards, and who saved them when.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardLayoutView {
    pub scope: String,
    pub cards: Vec<Card>,
    pub saved_by: Option<String>,
    pub saved: Option<String>,
}

/// What is wrong with a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("scope {0:?}: tv:<edge>:<device> or tag:<tag>")]
    Scope(String),
    #[error("at most {MAX_CARDS} cards")]
    TooManyCards,
    #[error("card {card}: {what}")]
    Card { card: usize, what: String },
}

/// Checks a scope (`tv:<edge>:<device>` or `tag:<tag>`).
pub fn check_scope(scope: &str) -> Result<(), LayoutError> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let ok = match scope.split(':').collect::<Vec<_>>().as_slice() {
        ["tv", edge, device] => ok_part(edge) && ok_part(device),
        ["tag", tag] => ok_part(tag),
        _ => false,
    };
    ok.then_some(())
        .ok_or_else(|| LayoutError::Scope(scope.to_owned()))
}

/// Checks every card of `layout`.
pub fn check_layout(layout: &CardLayout) -> Result<(), LayoutError> {
    if layout.cards.len() > MAX_CARDS {
        return Err(LayoutError::TooManyCards);
    }
    for (i, card) in layout.cards.iter().enumerate() {
        let bad = |what: String| LayoutError::Card { card: i + 1, what };
        let label = |text: &str, what: &str| {
            if text.trim().is_empty() || text.chars().count() > MAX_LABEL {
                Err(bad(format!("{what}: 1 to {MAX_LABEL} characters")))
            } else {
                Ok(())
            }
        };
        label(&card.title, "title")?;
        if !(1..=2).contains(&card.width) {
            return Err(bad("width: 1 or 2".into()));
        }
        if card.fields.len() > MAX_ITEMS || card.buttons.len() > MAX_ITEMS {
            return Err(bad(format!(
                "at most {MAX_ITEMS} fields and {MAX_ITEMS} buttons"
            )));
        }
        for field in &card.fields {
            label(&field.label, "field label")?;
            if !BINDINGS.contains(&field.binding.as_str()) {
                return Err(bad(format!(
                    "field {:?} binds {:?}; one of {}",
                    field.label,
                    field.binding,
                    BINDINGS.join(", ")
                )));
            }
        }
        for button in &card.buttons {
            label(&button.label, "button label")?;
            DeviceCommand::parse(DeviceKind::Tv, &button.op, button.args.clone())
                .map_err(|e| bad(format!("button {:?}: {e}", button.label)))?;
        }
    }
    Ok(())
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("card store: {e}"))
}

/// The cards of a scope (role viewer): `tv:<edge>:<device>` for one TV, `tag:<tag>` for the TVs
/// with that tag. A scope without cards has an empty list.
#[utoipa::path(
    get,
    path = "/api/v1/cards/{scope}",
    tag = "console",
    params(("scope" = String, Path, description = "tv:<edge>:<device> or tag:<tag>")),
    responses(
        (status = 200, description = "The cards", body = CardLayoutView),
        (status = 400, description = "Not a scope", body = ErrorBody),
    )
)]
pub async fn get_cards(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(scope): Path<String>,
) -> Result<Json<CardLayoutView>, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    check_scope(&scope).map_err(|e| bad_request(e.to_string()))?;
    let tree = ctx.db.open_tree(TREE).map_err(store_error)?;
    let stored = tree
        .get(scope.as_bytes())
        .map_err(store_error)?
        .map(|bytes| serde_json::from_slice::<StoredLayout>(&bytes))
        .transpose()
        .map_err(store_error)?;
    Ok(Json(match stored {
        Some(s) => CardLayoutView {
            scope,
            cards: s.cards,
            saved_by: Some(s.by),
            saved: Some(rfc3339_utc(s.saved_us)),
        },
        None => CardLayoutView {
            scope,
            cards: Vec::new(),
            saved_by: None,
            saved: None,
        },
    }))
}

/// Every scope's cards (role viewer), for the TV wall: one request for all its tiles.
#[utoipa::path(
    get,
    path = "/api/v1/cards",
    tag = "console",
    responses((status = 200, description = "Every saved layout", body = Vec<CardLayoutView>))
)]
pub async fn list_cards(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
) -> Result<Json<Vec<CardLayoutView>>, ApiError> {
    authorize(&ctx, &headers, Role::Viewer)?;
    let tree = ctx.db.open_tree(TREE).map_err(store_error)?;
    let mut all = Vec::new();
    for entry in tree.iter() {
        let (key, bytes) = entry.map_err(store_error)?;
        let Ok(stored) = serde_json::from_slice::<StoredLayout>(&bytes) else {
            continue;
        };
        all.push(CardLayoutView {
            scope: String::from_utf8_lossy(&key).into_owned(),
            cards: stored.cards,
            saved_by: Some(stored.by),
            saved: Some(rfc3339_utc(stored.saved_us)),
        });
    }
    Ok(Json(all))
}

/// Saves the cards of a scope, replacing what it had (role operator).
#[utoipa::path(
    put,
    path = "/api/v1/cards/{scope}",
    tag = "console",
    params(("scope" = String, Path, description = "tv:<edge>:<device> or tag:<tag>")),
    request_body = CardLayout,
    responses(
        (status = 200, description = "Saved", body = CardLayoutView),
        (status = 400, description = "A card that does not check, named", body = ErrorBody),
    )
)]
pub async fn put_cards(
    State(ctx): State<Arc<ApiContext>>,
    headers: HeaderMap,
    Path(scope): Path<String>,
    Json(layout): Json<CardLayout>,
) -> Result<Json<CardLayoutView>, ApiError> {
    let by = authorize(&ctx, &headers, Role::Operator)?;
    check_scope(&scope).map_err(|e| bad_request(e.to_string()))?;
    check_layout(&layout).map_err(|e| bad_request(e.to_string()))?;
    let saved_us = outpost_process::clock::unix_us();
    let stored = StoredLayout {
        cards: layout.cards,
        by,
        saved_us,
    };
    let tree = ctx.db.open_tree(TREE).map_err(store_error)?;
    tree.insert(
        scope.as_bytes(),
        serde_json::to_vec(&stored).map_err(store_error)?,
    )
    .map_err(store_error)?;
    tree.flush().map_err(store_error)?;
    Ok(Json(CardLayoutView {
        scope,
        cards: stored.cards,
        saved_by: Some(stored.by),
        saved: Some(rfc3339_utc(saved_us)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(fields: &[(&str, &str)], buttons: &[(&str, &str, serde_json::Value)]) -> CardLayout {
        CardLayout {
            cards: vec![Card {
                title: "Lobby".into(),
                width: 1,
                fields: fields
                    .iter()
                    .map(|(l, b)| CardField {
                        label: (*l).into(),
                        binding: (*b).into(),
                    })
                    .collect(),
                buttons: buttons
                    .iter()
                    .map(|(l, op, args)| CardButton {
                        label: (*l).into(),
                        op: (*op).into(),
                        args: args.clone(),
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn a_layout_binds_known_telemetry_and_buttons_that_are_tv_commands() {
        let good = card(
            &[("Volume", "tv.volume"), ("Input", "tv.input")],
            &[("Quiet", "volume", serde_json::json!({"level": 3}))],
        );
        assert_eq!(check_layout(&good), Ok(()));
        let unknown_binding = card(&[("Temp", "tv.temperature")], &[]);
        assert!(
            check_layout(&unknown_binding)
                .unwrap_err()
                .to_string()
                .contains("tv.temperature")
        );
        let loud = card(&[], &[("Loud", "volume", serde_json::json!({"level": 99}))]);
        assert!(
            check_layout(&loud)
                .unwrap_err()
                .to_string()
                .contains("Loud")
        );
        let not_tv = card(&[], &[("Stop", "disable", serde_json::json!({}))]);
        assert!(check_layout(&not_tv).is_err());
    }

    #[test]
    fn scopes_name_one_tv_or_one_tag() {
        assert!(check_scope("tv:edge-01:tv-1").is_ok());
        assert!(check_scope("tag:lobby").is_ok());
        assert!(check_scope("tv:edge-01").is_err());
        assert!(check_scope("tag:../x").is_err());
        assert!(check_scope("group:lobby").is_err());
    }
}
