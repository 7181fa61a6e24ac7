/**
 * JupyterLab and Notebook 7 plugin for Pomerium sign-ins: a status bar item,
 * commands in the palette and a "Pomerium" main menu (declared in
 * schema/plugin.json).
 *
 * Every dependency is optional, so the plugin loads in every Notebook 7 page
 * as well as in JupyterLab.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { SignInModel } from './model';
import { promptAndSignIn, signIn } from './signin';
import {
  promptAndSignOut,
  promptAndSignOutAll,
  showSignInsDialog,
  signOutOfAll,
  signOutOfRoute
} from './signout';
import { SignInStatusItem } from './statusbar';

const PLUGIN_ID = 'pomerium-jupyter-labextension:plugin';

/**
 * Command ids. Each sign-in and sign-out command also accepts a `route`
 * argument, which skips the dialog.
 */
export namespace CommandIDs {
  export const signIn = 'pomerium:sign-in';
  export const signOut = 'pomerium:sign-out';
  export const signOutAll = 'pomerium:sign-out-all';
  export const showSignIns = 'pomerium:show-sign-ins';
}

interface ISettings {
  defaultRoutes: string[];
  showStatusItem: boolean;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Shows and manages Pomerium sign-ins of the Jupyter server.',
  autoStart: true,
  optional: [ICommandPalette, IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null
  ): void => {
    const model = new SignInModel();
    const settings: ISettings = { defaultRoutes: [], showStatusItem: true };
    const settingsChanged = new Signal<object, void>(settings);
    const { commands } = app;

    commands.addCommand(CommandIDs.signIn, {
      label: 'Sign in to a Pomerium route…',
      caption: 'Open the Pomerium sign-in for a route in a pop-up window',
      execute: args => {
        const route = stringArgument(args, 'route');
        if (route) {
          // No await before this call, so the caller's click still counts
          // as the gesture that allows the pop-up.
          signIn(model, route);
          return;
        }
        return promptAndSignIn(model, settings.defaultRoutes);
      }
    });
    commands.addCommand(CommandIDs.signOut, {
      label: 'Sign out of a Pomerium deployment…',
      caption: 'Remove the stored token of one Pomerium deployment',
      execute: args => {
        const route = stringArgument(args, 'route');
        return route ? signOutOfRoute(model, route) : promptAndSignOut(model);
      }
    });
    commands.addCommand(CommandIDs.signOutAll, {
      label: 'Sign out of all Pomerium deployments',
      caption: 'Remove every stored Pomerium token of this Jupyter server',
      execute: () => promptAndSignOutAll(model)
    });
    commands.addCommand(CommandIDs.showSignIns, {
      label: 'Show Pomerium sign-ins',
      caption: 'List the signed-in Pomerium deployments',
      execute: async () => {
        const action = await showSignInsDialog(model);
        if (action === 'sign-in') {
          await promptAndSignIn(model, settings.defaultRoutes);
        } else if (action === 'sign-out-all') {
          await signOutOfAll(model);
        }
      }
    });

    if (palette) {
      const category = 'Pomerium';
      for (const command of [
        CommandIDs.signIn,
        CommandIDs.signOut,
        CommandIDs.signOutAll,
        CommandIDs.showSignIns
      ]) {
        palette.addItem({ command, category });
      }
    }

    if (statusBar) {
      const item = new SignInStatusItem(model, () => {
        void commands.execute(CommandIDs.showSignIns);
      });
      statusBar.registerStatusItem(PLUGIN_ID, {
        item,
        align: 'left',
        rank: 900,
        isActive: () => settings.showStatusItem && item.hasSignIns,
        activeStateChanged: mergedSignal(model.changed, settingsChanged)
      });
    }

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(loaded => {
          const apply = (): void => {
            const routes = loaded.get('defaultRoutes').composite;
            settings.defaultRoutes = Array.isArray(routes)
              ? routes.filter(
                  (route): route is string => typeof route === 'string'
                )
              : [];
            settings.showStatusItem =
              loaded.get('showStatusItem').composite !== false;
            settingsChanged.emit();
          };
          apply();
          loaded.changed.connect(apply);
        })
        .catch(error => {
          console.error(`Could not load the settings of ${PLUGIN_ID}:`, error);
        });
    }
  }
};

function stringArgument(
  args: ReadonlyPartialJSONObject,
  name: string
): string | null {
  const value = args[name];
  return typeof value === 'string' && value.trim() ? value : null;
}

/**
 * Return a signal that is emitted whenever any of `sources` is emitted.
 */
function mergedSignal(
  ...sources: ISignal<object, void>[]
): Signal<object, void> {
  const merged = new Signal<object, void>({});
  for (const source of sources) {
    source.connect(() => merged.emit());
  }
  return merged;
}

export default plugin;
