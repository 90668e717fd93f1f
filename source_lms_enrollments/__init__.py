from .source import SourceLmsEnrollments

__all__ = ["SourceLmsEnrollments"]
