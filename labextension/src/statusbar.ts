/**
 * The status bar item that shows who is signed in to Pomerium.
 */

import { Widget } from '@lumino/widgets';

import { statusBarText, statusBarTitle } from './format';
import { SignInModel } from './model';

/**
 * A clickable status bar text such as "Pomerium: alice · 5 min". It is empty
 * while no deployment is signed in, and the status bar hides it then.
 */
export class SignInStatusItem extends Widget {
  constructor(
    private readonly _model: SignInModel,
    private readonly _onClick: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-PomeriumStatus');
    this.addClass('jp-StatusBar-TextItem');
    const button = this.node as HTMLButtonElement;
    button.type = 'button';
    button.dataset.pomerium = 'status-item';
    button.addEventListener('click', this._onClick);
    this._model.changed.connect(this.render, this);
    this.render();
  }

  /**
   * Tell whether the item has something to show.
   */
  get hasSignIns(): boolean {
    const status = this._model.status;
    return status !== null && status.deployments.length > 0;
  }

  /**
   * Update the text and tooltip from the model.
   */
  render(): void {
    const status = this._model.status;
    const now = Date.now() / 1000;
    const node = this.node;
    if (status === null) {
      node.textContent = '';
      node.title = this._model.error ?? '';
      return;
    }
    node.textContent = statusBarText(status, now);
    let title = statusBarTitle(status, now);
    if (this._model.error) {
      title += `\nThe last status update failed: ${this._model.error}`;
    }
    node.title = title;
    node.setAttribute('aria-label', title);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.node.removeEventListener('click', this._onClick);
    this._model.changed.disconnect(this.render, this);
    super.dispose();
  }
}
