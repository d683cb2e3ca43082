"""Differential-privacy accounting and settings (a ground module: imports only errors and configtools)."""

from fedseg.privacy.accountant import ACCOUNTANT, DEFAULT_ORDERS, composed_epsilon, epsilon, noise_multiplier_for, rdp
from fedseg.privacy.config import PrivacyConfig, PrivacyMode, Schedule, central_schedule, site_schedule

__all__ = ["ACCOUNTANT", "DEFAULT_ORDERS", "PrivacyConfig", "PrivacyMode", "Schedule", "central_schedule",
           "composed_epsilon", "epsilon", "noise_multiplier_for", "rdp", "site_schedule"]
