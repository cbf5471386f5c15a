//! The floor as the hub's config describes it (`[accounting]`, `[[sites]]`, `[[machines]]`),
//! turned into the domain's [`Floor`].

use outpost_config::{HubConfig, par_basis_points};
use outpost_domain::calendar::{Calendar, CalendarError};
use outpost_domain::money::Currency;
use outpost_domain::site::{Floor, Site, Terms};

/// The floor of `config` (`config check` has validated it; an unknown zone is still an error).
pub fn from_config(config: &HubConfig) -> Result<Floor, CalendarError> {
    let a = &config.accounting;
    let default_terms = Terms {
        denomination: a.denomination.max(1),
        par_bp: par_basis_points(a.par_percent),
    };
    let mut floor = Floor::new(
        Currency::new(&a.currency, a.currency_decimals),
        default_terms,
        Calendar::new(&a.time_zone, a.gaming_day_start_hour)?,
    );
    for site in &config.sites {
        floor = floor.with_site(Site {
            id: site.id.clone(),
            name: if site.name.is_empty() {
                site.id.clone()
            } else {
                site.name.clone()
            },
            calendar: Calendar::new(&site.time_zone, site.gaming_day_start_hour)?,
            edges: site.edges.clone(),
        });
    }
    for m in &config.machines {
        if m.denomination.is_some() {
            floor = floor.with_configured_denomination(&m.edge, &m.device);
        }
        floor = floor.with_machine(
            &m.edge,
            &m.device,
            Terms {
                denomination: m.denomination.unwrap_or(default_terms.denomination).max(1),
                par_bp: m.par_percent.map_or(default_terms.par_bp, par_basis_points),
            },
        );
    }
    Ok(floor)
}
