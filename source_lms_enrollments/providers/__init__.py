"""The provider registry: `provider_type` -> its `LmsProvider`. Adding a provider is one line here."""

from ..base import LmsProvider
from .canvas import Canvas
from .ispring_learn import IspringLearn
from .docebo import Docebo
from .talentlms import TalentLms

PROVIDERS: dict[str, type[LmsProvider]] = {
    provider.provider_type: provider
    for provider in (
        TalentLms,
        Canvas,
        IspringLearn,
        Docebo,
    )
}
