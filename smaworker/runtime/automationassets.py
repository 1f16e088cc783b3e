"""Azure Automation's `automationassets` module, served by sma (see smarunbook.assets)."""

from smarunbook.assets import (  # noqa: F401
    AutomationAssetError,
    AutomationAssetException,
    AutomationAssetNotFound,
    get_automation_certificate,
    get_automation_connection,
    get_automation_credential,
    get_automation_variable,
    set_automation_variable,
)
