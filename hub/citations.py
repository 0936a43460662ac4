"""The papers behind each method, as data: title, authors, venue, arXiv id, code and the license
of the authors' released weights. Model cards cite them (``bibtex``) and link them (``paper``).

One entry per method name of ``pretrain/methods`` (and of the authors' releases in the zoo:
MoCo v1 / v2). The BibTeX text is generated from these fields, so a title or author list lives
in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass

CVPR = "Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)"
ICCV = "Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)"
NEURIPS = "Advances in Neural Information Processing Systems (NeurIPS)"
CC_BY_NC = "cc-by-nc-4.0"


@dataclass(frozen=True)
class Paper:
    """One method's paper. ``authors`` as BibTeX names ("Last, First"); ``venue`` is the
    booktitle of an ``inproceedings`` entry, or the journal of an ``article``."""

    key: str  # BibTeX citation key
    title: str
    authors: tuple[str, ...]
    venue: str
    year: int
    arxiv: str
    code: str  # the authors' repository
    weights_license: str  # of the authors' released checkpoints (Hub license id)
    short: str  # "Chen & He, CVPR 2021"
    pages: str | None = None
    kind: str = "inproceedings"  # or "article"
    volume: str | None = None

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"

    def bibtex(self) -> str:
        """The BibTeX entry (one field a line, values in braces)."""
        fields = [("title", self.title), ("author", " and ".join(self.authors))]
        fields.append(("booktitle" if self.kind == "inproceedings" else "journal", self.venue))
        if self.volume:
            fields.append(("volume", self.volume))
        if self.pages:
            fields.append(("pages", self.pages))
        fields += [("year", str(self.year)), ("eprint", self.arxiv), ("archivePrefix", "arXiv")]
        body = ",\n".join(f"  {name:<13} = {{{value}}}" for name, value in fields)
        return f"@{self.kind}{{{self.key},\n{body}\n}}"


PAPERS: dict[str, Paper] = {
    "simsiam": Paper(
        key="chen2021simsiam",
        title="Exploring Simple Siamese Representation Learning",
        authors=("Chen, Xinlei", "He, Kaiming"),
        venue=CVPR,
        year=2021,
        pages="15750--15758",
        arxiv="2011.10566",
        code="https://github.com/facebookresearch/simsiam",
        weights_license=CC_BY_NC,
        short="Chen & He, CVPR 2021",
    ),
    "byol": Paper(
        key="grill2020byol",
        title="Bootstrap Your Own Latent - A New Approach to Self-Supervised Learning",
        authors=(
            "Grill, Jean-Bastien",
            "Strub, Florian",
            "Altch{\\'e}, Florent",
            "Tallec, Corentin",
            "Richemond, Pierre H.",
            "Buchatskaya, Elena",
            "Doersch, Carl",
            "Avila Pires, Bernardo",
            "Guo, Zhaohan Daniel",
            "Gheshlaghi Azar, Mohammad",
            "Piot, Bilal",
            "Kavukcuoglu, Koray",
            "Munos, R{\\'e}mi",
            "Valko, Michal",
        ),
        venue=NEURIPS,
        year=2020,
        volume="33",
        pages="21271--21284",
        arxiv="2006.07733",
        code="https://github.com/google-deepmind/deepmind-research/tree/master/byol",
        weights_license="apache-2.0",
        short="Grill et al., NeurIPS 2020",
    ),
    "mocov3": Paper(
        key="chen2021mocov3",
        title="An Empirical Study of Training Self-Supervised Vision Transformers",
        authors=("Chen, Xinlei", "Xie, Saining", "He, Kaiming"),
        venue=ICCV,
        year=2021,
        pages="9640--9649",
        arxiv="2104.02057",
        code="https://github.com/facebookresearch/moco-v3",
        weights_license=CC_BY_NC,
        short="Chen, Xie & He, ICCV 2021",
    ),
    "dino": Paper(
        key="caron2021dino",
        title="Emerging Properties in Self-Supervised Vision Transformers",
        authors=(
            "Caron, Mathilde",
            "Touvron, Hugo",
            "Misra, Ishan",
            "J{\\'e}gou, Herv{\\'e}",
            "Mairal, Julien",
            "Bojanowski, Piotr",
            "Joulin, Armand",
        ),
        venue=ICCV,
        year=2021,
        pages="9650--9660",
        arxiv="2104.14294",
        code="https://github.com/facebookresearch/dino",
        weights_license="apache-2.0",
        short="Caron et al., ICCV 2021",
    ),
    "mocov2": Paper(
        key="chen2020mocov2",
        title="Improved Baselines with Momentum Contrastive Learning",
        authors=("Chen, Xinlei", "Fan, Haoqi", "Girshick, Ross", "He, Kaiming"),
        venue="arXiv preprint arXiv:2003.04297",
        kind="article",
        year=2020,
        arxiv="2003.04297",
        code="https://github.com/facebookresearch/moco",
        weights_license=CC_BY_NC,
        short="Chen et al., arXiv 2020",
    ),
    "mocov1": Paper(
        key="he2020moco",
        title="Momentum Contrast for Unsupervised Visual Representation Learning",
        authors=("He, Kaiming", "Fan, Haoqi", "Wu, Yuxin", "Xie, Saining", "Girshick, Ross"),
        venue=CVPR,
        year=2020,
        pages="9729--9738",
        arxiv="1911.05722",
        code="https://github.com/facebookresearch/moco",
        weights_license=CC_BY_NC,
        short="He et al., CVPR 2020",
    ),
}


def paper(method: str) -> Paper | None:
    """The paper of ``method`` (a ``pretrain/methods`` name), or None for an unknown one."""
    return PAPERS.get(method)
