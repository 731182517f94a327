import { reportedLoad } from '../load.js'
import { LeastConnectionsPicker } from './least-connections.js'

/**
 * `least-load`: the candidate with the least reported load (queue, running batch, KV use, plus
 * what this gateway sent since the report). A full scan rather than two random draws: reports are
 * shared by every gateway and corrected by what each has sent since, so the herding that two
 * choices protect against is already damped, and with a handful of backends the scan finds the
 * idle one that two draws can miss. Without fresh reports it compares peak-EWMA estimates.
 */
export class LeastLoadPicker extends LeastConnectionsPicker {
  constructor() {
    super(reportedLoad, 'least-load')
  }
}
