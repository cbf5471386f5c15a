//! Money: whole minor units (cents) of one currency, written as decimal strings.
//!
//! Invariant: amounts are integers of minor units end to end — never floats — and are written
//! with the currency's own number of decimals (`"20.00"`, `"-5.50"`, `"1200"` for a currency
//! without minor units).

use serde::{Deserialize, Serialize};

/// A currency: its ISO 4217 code and how many decimals its minor unit has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency {
    pub code: String,
    pub decimals: u8,
}

impl Currency {
    pub fn new(code: &str, decimals: u8) -> Self {
        Self {
            code: code.to_owned(),
            decimals: decimals.min(4),
        }
    }

    /// Minor units in one major unit (100 for two decimals).
    pub fn minor_per_major(&self) -> i64 {
        10i64.pow(u32::from(self.decimals))
    }

    /// SAS cents (hundredths of the currency's unit) in minor units, rounded toward zero.
    pub fn cents_to_minor(&self, cents: u128) -> i128 {
        let cents = i128::try_from(cents).unwrap_or(i128::MAX);
        cents.saturating_mul(i128::from(self.minor_per_major())) / 100
    }

    /// `minor` written as a decimal string in this currency.
    pub fn format(&self, minor: i128) -> String {
        if self.decimals == 0 {
            return minor.to_string();
        }
        let per = i128::from(self.minor_per_major());
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        let per = per.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / per,
            abs % per,
            width = usize::from(self.decimals)
        )
    }

    /// Reads a decimal string (`"20"`, `"20.5"`, `"20.50"`) into minor units. Refuses more
    /// decimals than the currency has, signs where `allow_negative` is false, and anything that
    /// is not a plain decimal number.
    pub fn parse(&self, text: &str, allow_negative: bool) -> Result<i128, MoneyError> {
        let trimmed = text.trim();
        let (negative, digits) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if negative && !allow_negative {
            return Err(MoneyError::Negative(text.to_owned()));
        }
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !plain(whole) || !plain(fraction) || whole.len() > 15 {
            return Err(MoneyError::NotANumber(text.to_owned()));
        }
        if fraction.len() > usize::from(self.decimals) {
            return Err(MoneyError::TooManyDecimals {
                text: text.to_owned(),
                currency: self.code.clone(),
                decimals: self.decimals,
            });
        }
        let whole: i128 = whole
            .parse()
            .map_err(|_| MoneyError::NotANumber(text.to_owned()))?;
        let mut minor = whole * i128::from(self.minor_per_major());
        if !fraction.is_empty() {
            let scale = 10i128.pow(u32::from(self.decimals) - fraction.len() as u32);
            let f: i128 = fraction
                .parse()
                .map_err(|_| MoneyError::NotANumber(text.to_owned()))?;
            minor += f * scale;
        }
        Ok(if negative { -minor } else { minor })
    }
}

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not an amount; write a decimal number such as \"20.00\"")]
    NotANumber(String),
    #[error("{0:?} is negative; amounts here are 0 or more")]
    Negative(String),
    #[error("{text:?} has more decimals than {currency} has ({decimals})")]
    TooManyDecimals {
        text: String,
        currency: String,
        decimals: u8,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn amounts_are_written_with_the_currencys_decimals() {
        let usd = Currency::new("USD", 2);
        assert_eq!(usd.format(2000), "20.00");
        assert_eq!(usd.format(-550), "-5.50");
        assert_eq!(usd.format(7), "0.07");
        assert_eq!(Currency::new("JPY", 0).format(1200), "1200");
    }

    #[test]
    fn amounts_read_back_exactly_and_nonsense_is_refused() {
        let usd = Currency::new("USD", 2);
        assert_eq!(usd.parse("20", false).unwrap(), 2000);
        assert_eq!(usd.parse("20.5", false).unwrap(), 2050);
        assert_eq!(usd.parse("-1.25", true).unwrap(), -125);
        assert!(matches!(
            usd.parse("-1", false),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            usd.parse("1.234", false),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        for bad in ["", "abc", "1e5", "1.2.3", ".5", "+5", "NaN"] {
            assert!(usd.parse(bad, true).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_and_parse_round_trip(minor in -10_000_000_000i128..10_000_000_000i128, decimals in 0u8..4) {
            let c = Currency::new("XXX", decimals);
            proptest::prop_assert_eq!(c.parse(&c.format(minor), true).unwrap(), minor);
        }
    }
}
