"""The provider registry: `provider_type` -> its `LmsProvider`. Adding a provider is one line here."""

from ..base import LmsProvider
from .bindbee import Bindbee
from .canvas import Canvas
from .ispring_learn import IspringLearn
from .docebo import Docebo
from .northpass import Northpass
from .moodle import Moodle
from .talentlms import TalentLms
from .thinkific import Thinkific
from .truto import Truto

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
        Thinkific,
    )
}
