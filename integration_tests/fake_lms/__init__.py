"""The fake LMS server: real HTTP on loopback, imitating each provider's documented API over seeded data."""

from .bindbee import BindbeeApp
from .dataset import Dataset
from .moodle import MoodleApp
from .server import FakeLmsServer, FakeProviderApp, FakeRequest, FakeResponse
from .canvas import CanvasApp
from .ispring_learn import IspringLearnApp
from .kombo import KomboApp
from .docebo import DoceboApp
from .go1 import Go1App
from .northpass import NorthpassApp
from .stackone import StackOneApp
from .talentlms import TalentLmsApp
from .thinkific import ThinkificApp
from .truto import TrutoApp
from .unified_to import UnifiedToApp

# provider_type -> fake app. Adding a provider's fake is one line here.
APPS: dict[str, type[FakeProviderApp]] = {
    app.name: app
    for app in (
        TalentLmsApp,
        CanvasApp,
        IspringLearnApp,
        DoceboApp,
        TrutoApp,
        BindbeeApp,
        NorthpassApp,
        MoodleApp,
        UnifiedToApp,
        KomboApp,
        StackOneApp,
        Go1App,
        ThinkificApp,
    )
}


def start_fake(provider: str, users: int = 50, courses: int = 10, enrollments: int | None = None, seed: int = 7,
               port: int = 0, latency_ms: float = 0.0, cache: bool = False, **options) -> FakeLmsServer:
    """Build the dataset, start the provider's fake on 127.0.0.1 and return the running server."""
    data = Dataset(users=users, courses=courses, enrollments=enrollments, seed=seed)
    return FakeLmsServer(APPS[provider](data, **options), port=port, latency_ms=latency_ms, cache=cache).start()


__all__ = ["APPS", "Dataset", "FakeLmsServer", "FakeProviderApp", "FakeRequest", "FakeResponse", "start_fake"]
