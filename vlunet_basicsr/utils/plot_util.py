"""Figures written during validation."""
import os
import os.path as osp

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def save_similarity_heatmap(matrix, row_names, col_names, path, title):
    """Save a labelled heatmap of ``matrix`` (rows: true degradations, columns: prompts) as a PNG."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    size = max(4.0, 0.9 * len(col_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 2, size))
    image = ax.imshow(matrix, cmap='viridis')
    ax.set_xticks(range(len(col_names)), col_names, rotation=45, ha='right', fontsize=8)
    ax.set_yticks(range(len(row_names)), row_names, fontsize=8)
    for i in range(len(row_names)):
        for j in range(len(col_names)):
            ax.text(j, i, f'{matrix[i][j]:.2f}', ha='center', va='center', color='w', fontsize=7)
    ax.set_xlabel('prompt')
    ax.set_ylabel('degradation of the image')
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
