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


def save_image_grid(rows, column_titles, path):
    """Save a grid of RGB float images: ``rows`` is [(row name, [image per column])]."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fig, axes = plt.subplots(len(rows), len(column_titles), figsize=(3 * len(column_titles), 2.6 * len(rows)),
                             squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(image.clip(0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c])
            if c == 0:
                ax.set_ylabel(name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_mixture_weights(trace, path):
    """Bar charts of each stage's softmax weights over its key database (``VLUNet.forward_with_trace``)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(12, 5), sharey=True)
    for ax, record in zip(axes.flat, trace):
        weights = record['mixture_weights'][0].float().cpu().numpy()
        ax.bar(range(len(weights)), weights, color='tab:blue')
        ax.set_title(record['stage'], fontsize=9)
        ax.set_xticks(range(len(weights)))
        ax.set_xlabel('key')
    axes[0][0].set_ylabel('weight')
    fig.suptitle('Degradation key mixture per stage')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_residual_maps(trace, path):
    """Mean |phi(x, keys) - y| over channels at every stage: where each gradient step corrects most."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(12, 6))
    for ax, record in zip(axes.flat, trace):
        ax.imshow(record['residual'][0].float().abs().mean(dim=0).cpu().numpy(), cmap='magma')
        ax.set_title(record['stage'], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle('Gradient-step residual |phi(x, keys) - y| per stage')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
