//! The floor as the hub's config describes it: sites (edges grouped, each with its calendar),
//! the currency, and each machine's terms (denomination, par).
//!
//! Invariant: every edge belongs to exactly one site — the one that lists it, or the default site
//! when none does — so every figure adds up the same per machine, per site and for all sites.

use std::collections::BTreeMap;

use crate::calendar::Calendar;
use crate::money::Currency;

/// The site edges belong to when no site lists them.
pub const DEFAULT_SITE: &str = "default";

/// A site: edges under one roof and one gaming-day calendar.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub calendar: Calendar,
    pub edges: Vec<String>,
}

/// A machine's accounting terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Value of one credit in minor units of the currency.
    pub denomination: u32,
    /// Theoretical payback in basis points (9250 = 92.50 %), when known.
    pub par_bp: Option<u32>,
}

/// The whole floor.
#[derive(Debug, Clone)]
pub struct Floor {
    pub currency: Currency,
    pub default_terms: Terms,
    sites: Vec<Site>,
    default_site: Site,
    machines: BTreeMap<(String, String), Terms>,
}

impl Floor {
    pub fn new(currency: Currency, default_terms: Terms, default_calendar: Calendar) -> Self {
        Self {
            currency,
            default_terms,
            sites: Vec::new(),
            default_site: Site {
                id: DEFAULT_SITE.into(),
                name: "Edges no site lists".into(),
                calendar: default_calendar,
                edges: Vec::new(),
            },
            machines: BTreeMap::new(),
        }
    }

    /// A floor in US dollars, one-cent credits, UTC days from midnight: tests and the simplest hub.
    pub fn simple() -> Self {
        Self::new(
            Currency::new("USD", 2),
            Terms {
                denomination: 1,
                par_bp: None,
            },
            Calendar::utc(),
        )
    }

    pub fn with_site(mut self, site: Site) -> Self {
        self.sites.push(site);
        self
    }

    pub fn with_machine(mut self, edge: &str, device: &str, terms: Terms) -> Self {
        self.machines
            .insert((edge.to_owned(), device.to_owned()), terms);
        self
    }

    /// The site of `edge`.
    pub fn site_of(&self, edge: &str) -> &Site {
        self.sites
            .iter()
            .find(|s| s.edges.iter().any(|e| e == edge))
            .unwrap_or(&self.default_site)
    }

    /// A site by id (the default one included).
    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites
            .iter()
            .chain(std::iter::once(&self.default_site))
            .find(|s| s.id == id)
    }

    /// Every site, the default one last.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter().chain(std::iter::once(&self.default_site))
    }

    pub fn terms(&self, edge: &str, device: &str) -> Terms {
        self.machines
            .get(&(edge.to_owned(), device.to_owned()))
            .copied()
            .unwrap_or(self.default_terms)
    }

    /// `credits` of a machine in minor units.
    pub fn credits_to_minor(&self, edge: &str, device: &str, credits: u128) -> i128 {
        let minor = credits.saturating_mul(u128::from(self.terms(edge, device).denomination));
        i128::try_from(minor).unwrap_or(i128::MAX)
    }

    /// Minor units written as money.
    pub fn money(&self, minor: i128) -> String {
        self.currency.format(minor)
    }
}
