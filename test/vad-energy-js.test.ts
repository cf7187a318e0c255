import { jsBackend } from '../src/vad/energy.js';
import { runEnergyContract } from './fixtures/vad-energy-contract.js';

runEnergyContract('js', () => jsBackend);
