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
    /// Machines whose denomination the config sets (it wins over what the machine says).
    configured_denomination: std::collections::BTreeSet<(String, String)>,
    /// What machines say their credit is worth (LP 1F), kept by the devices projection.
    reported: Option<ReportedDenominations>,
}

/// Each machine's credit value in cents as it reports it (LP 1F), shared between the devices
/// projection (which writes it) and the floor (which reads it).
pub type ReportedDenominations = std::sync::Arc<std::sync::RwLock<BTreeMap<(String, String), u32>>>;

/// Where a machine's denomination comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenominationSource {
    /// `[[machines]]` in the hub config.
    Config,
    /// The machine (LP 1F).
    Machine,
    /// `[accounting]` in the hub config.
    Default,
}

impl DenominationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DenominationSource::Config => "config",
            DenominationSource::Machine => "machine",
            DenominationSource::Default => "default",
        }
    }
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
            configured_denomination: Default::default(),
            reported: None,
        }
    }

    /// A floor that takes each machine's denomination from what it says (LP 1F) unless the
    /// config sets it for that machine.
    pub fn with_reported(mut self, reported: ReportedDenominations) -> Self {
        self.reported = Some(reported);
        self
    }

    /// The map of reported denominations this floor reads, if any.
    pub fn reported_denominations(&self) -> Option<ReportedDenominations> {
        self.reported.clone()
    }

    /// Marks a machine's denomination as set by the config.
    pub fn with_configured_denomination(mut self, edge: &str, device: &str) -> Self {
        self.configured_denomination
            .insert((edge.to_owned(), device.to_owned()));
        self
    }

    /// What the machine says its credit is worth, in minor units of the currency (`None` when it
    /// has not said, or it does not come to whole minor units).
    fn reported_denomination(&self, edge: &str, device: &str) -> Option<u32> {
        let cents = *self
            .reported
            .as_ref()?
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(edge.to_owned(), device.to_owned()))?;
        let scaled = u64::from(cents) * u64::try_from(self.currency.minor_per_major()).ok()?;
        (scaled % 100 == 0)
            .then(|| u32::try_from(scaled / 100).ok())
            .flatten()
            .filter(|d| *d > 0)
    }

    /// A machine's denomination and where it comes from.
    pub fn denomination(&self, edge: &str, device: &str) -> (u32, DenominationSource) {
        let key = (edge.to_owned(), device.to_owned());
        if self.configured_denomination.contains(&key)
            && let Some(terms) = self.machines.get(&key)
        {
            return (terms.denomination, DenominationSource::Config);
        }
        if let Some(reported) = self.reported_denomination(edge, device) {
            return (reported, DenominationSource::Machine);
        }
        (self.default_terms.denomination, DenominationSource::Default)
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
        let mut terms = self
            .machines
            .get(&(edge.to_owned(), device.to_owned()))
            .copied()
            .unwrap_or(self.default_terms);
        terms.denomination = self.denomination(edge, device).0;
        terms
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
