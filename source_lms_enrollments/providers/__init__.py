"""The provider registry: `provider_type` -> its `LmsProvider`. Adding a provider is one line here."""

from ..base import LmsProvider
from .bindbee import Bindbee
from .canvas import Canvas
from .ispring_learn import IspringLearn
from .kombo import Kombo
from .docebo import Docebo
from .go1 import Go1
from .northpass import Northpass
from .stackone import StackOne
from .moodle import Moodle
from .talentlms import TalentLms
from .thinkific import Thinkific
from .truto import Truto
from .unified_to import UnifiedTo

PROVIDERS: dict[str, type[LmsProvider]] = {
    provider.provider_type: provider
    for provider in (
        TalentLms,
        Canvas,
        IspringLearn,
        Docebo,
        Truto,
        Bindbee,
        Northpass,
        Moodle,
        UnifiedTo,
        Kombo,
        StackOne,
        Go1,
        Thinkific,
    )
}
